// The chat page: one WebSocket per tab on the open conversation, speaking the history / history_page /
// start / chunk / tool / done / error protocol. Conversations switch without a page load (pushState).
// This entry wires the modules: socket.js (the connection), thread.js (what is shown, and the frames),
// composer.js (the message box and its controls, with mcp-check.js), actions.js (stop, and each message's
// buttons), shortcuts.js (the keyboard's, and their list), with their shared state in state.js.
// sidebar.js, a classic script after this one, uses window.chatApp.

import { state } from "./state.js";
import { connect, frameHandlerSet, socketDrop, socketExists } from "./socket.js";
import { liveDrop, onFrame, threadReset } from "./thread.js";
import { controlsRefresh, inputFocus, pendingSettle } from "./composer.js";
import "./actions.js";
import "./shortcuts.js";
import { csrfToken } from "./csrf.js";

const SESSION_PATH_RE = /^\/c\/([A-Za-z0-9_-]{1,64})\/$/;

function newSessionId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Show another conversation in this tab: a new socket, its history, the URL kept in step. */
function open(id, { push = true } = {}) {
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

window.addEventListener("popstate", () => {
  const match = location.pathname.match(SESSION_PATH_RE);
  if (match) open(match[1], { push: false });
});

frameHandlerSet(onFrame);
connect();

window.chatApp = {
  open,
  csrfToken,
  openNew: () => open(newSessionId()),
  get sessionId() {
    return state.sessionId;
  },
};
