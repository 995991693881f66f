// What the chat page's modules share, in one place. State only one module uses stays in that module: the
// socket and its backoff in socket.js, the paging of older messages in thread.js.

export const state = {
  // The conversation open in this tab (the page's own at first; open() changes it).
  sessionId: JSON.parse(document.getElementById("session-id").textContent),
  // The stored messages shown, by id, each with its view (content as written: what Copy copies and Edit
  // starts from).
  shown: new Map(),
  // The reply being streamed: its id, view, renderer, full text, and the offset the next chunk starts at.
  live: null,
  // A frame sent but not yet acknowledged by `start` (or `duplicate`): resent with the same client id
  // after a reconnect whose history does not hold it. The server drops a resend.
  pending: null,
  // Follow the stream to the bottom until the user scrolls up; then offer "jump to latest".
  pinned: true,
  // Once the user changes the model or MCP controls, a later history frame must not undo their choice.
  controlsTouched: false,
  // A version switch asked here: the message that replaces the one clicked, and where that one was on
  // screen, so the history that follows keeps it in place.
  anchor: null,
};

/** A reply is streaming, or a frame that starts one awaits its acknowledgement. */
export function busy() {
  return state.live !== null || state.pending !== null;
}
