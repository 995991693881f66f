// Which conversation this tab shows, and switching to another without a page load (pushState): a new
// socket, its history, the URL kept in step; the browser's Back and Forward switch back.

import { state } from "./state.js";
import { connect, socketDrop, socketExists } from "./socket.js";
import { liveDrop, threadReset } from "./thread.js";
import { controlsRefresh, inputFocus, pendingSettle } from "./composer.js";

const SESSION_PATH_RE = /^\/c\/([A-Za-z0-9_-]{1,64})\/$/;

function newSessionId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Show another conversation in this tab: a new socket, its history, the URL kept in step. */
export function conversationOpen(id, { push = true } = {}) {
  if (id === state.sessionId && socketExists()) return;
  socketDrop();
  state.sessionId = id;
  liveDrop();
  pendingSettle(); // a frame already sent is the old conversation's now: its text leaves the box
  state.controlsTouched = false;
  threadReset();
  controlsRefresh();
  if (push) history.pushState({ sessionId: id }, "", `/c/${encodeURIComponent(id)}/`);
  document.dispatchEvent(new CustomEvent("chat:opened", { detail: { sessionId: id } }));
  connect();
  inputFocus();
}

/** Start a new conversation in this tab (stored with its first message). */
export function newConversationOpen() {
  conversationOpen(newSessionId());
}

window.addEventListener("popstate", () => {
  const match = location.pathname.match(SESSION_PATH_RE);
  if (match) conversationOpen(match[1], { push: false });
});
