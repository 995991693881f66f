// The one WebSocket of this tab, on the open conversation: connecting, reconnecting with backoff,
// and sending frames. The frames it receives go to the handler main.js gives it.

import { state } from "./state.js";

const connection = document.getElementById("connection");

let socket = null;
let retryDelay = 500;
let retryTimer = null;
let frameHandler = () => {};
// The page is being left (a link, or a form such as Log out's, is loading the next one): a 4401 then is
// that navigation's doing, and reloading this page would race it.
let leaving = false;
window.addEventListener("beforeunload", () => {
  leaving = true;
});
window.addEventListener("pageshow", () => {
  leaving = false;
});

/** Where the frames of the current socket go (one handler for the page). */
export function frameHandlerSet(handler) {
  frameHandler = handler;
}

export function transmit(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

/** A socket exists (open, or still connecting, or closed and waiting to reconnect). */
export function socketExists() {
  return socket !== null;
}

export function socketOpen() {
  return socket !== null && socket.readyState === WebSocket.OPEN;
}

/** Close the current socket: its close event reconnects (maybe to another server). */
export function socketRestart() {
  socket.close();
}

/** Forget the current socket and close it: nothing it still receives is shown. */
export function socketDrop() {
  const old = socket;
  socket = null;
  if (old) old.close();
}

function setConnection(kind, label) {
  connection.className = "connection " + kind;
  connection.textContent = label;
}

export function connect() {
  clearTimeout(retryTimer);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  setConnection("connecting", "connecting…");
  const current = new WebSocket(`${scheme}://${location.host}/ws/chat/${encodeURIComponent(state.sessionId)}/`);
  socket = current;
  current.onopen = () => {
    retryDelay = 500;
    setConnection("open", "connected");
  };
  current.onmessage = (event) => {
    if (socket === current) frameHandler(event);
  };
  current.onclose = (event) => {
    if (socket !== current) return; // an older socket, already replaced
    if (event.code === 4401) {
      if (leaving) return;
      // No session (logged out elsewhere, expired) or a login is required: the page itself gets a fresh
      // session or sends us to the login page. At most once in a while, so a browser that keeps no
      // cookie does not reload forever.
      if (!reloadedRecently()) location.reload();
      else setConnection("closed", "signed out: this page needs cookies; reload to retry");
      return;
    }
    if (event.code === 4429) retryDelay = Math.max(retryDelay, 15000); // too many tabs: retry slowly
    reconnectLater(event.code === 4429 ? "too many open chats: close a tab" : "reconnecting…");
  };
}

function reloadedRecently() {
  try {
    const last = Number(sessionStorage.getItem("chat-reloaded-at") || 0);
    sessionStorage.setItem("chat-reloaded-at", String(Date.now()));
    return Date.now() - last < 10000;
  } catch {
    return true; // no storage either: do not risk a reload loop
  }
}

function reconnectLater(label) {
  setConnection("closed", label);
  clearTimeout(retryTimer);
  // Backoff with jitter, so a restarted server is not hit by every tab at once.
  retryTimer = setTimeout(connect, retryDelay * (0.5 + Math.random() / 2));
  retryDelay = Math.min(retryDelay * 2, 10000);
}

// The browser knows the network went away before TCP does: drop the socket now (without waiting for a
// closing handshake that cannot get through), and come back as soon as the network does. The reply
// goes on on the server; the next history frame resumes it.
window.addEventListener("offline", () => {
  if (!socket) return;
  const dead = socket;
  socket = null;
  dead.close();
  reconnectLater("reconnecting…");
});
window.addEventListener("online", () => {
  retryDelay = 500;
  if (!socket || socket.readyState === WebSocket.CLOSED || socket.readyState === WebSocket.CLOSING) connect();
});
