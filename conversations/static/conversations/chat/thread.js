// The thread: the messages shown, the reply being streamed, and the frames that change them (history,
// history_page, start, reasoning, chunk, duplicate, tool, done, error). Also the scroll: pinned to the end while
// the reader follows, older messages loaded when they scroll up.

import { StreamingRenderer } from "../markdown.js";
import { clientCallActivity, endingShow, messageView, replyContentShow, toolAdd, unsentShow } from "../messages.js";
import { reasoningThinking, reasoningView, reasoningWords } from "../reasoning.js";
import { state } from "./state.js";
import { socketRestart, transmit } from "./socket.js";
import {
  controlsFromConversation,
  controlsRefresh,
  inputFocus,
  mcpRefused,
  pendingRefused,
  pendingSettle,
} from "./composer.js";

const chat = document.getElementById("chat");
const list = document.getElementById("messages");
const emptyNote = document.getElementById("empty-chat");
const loadOlder = document.getElementById("load-older");
const jumpLatest = document.getElementById("jump-latest");
const title = document.getElementById("chat-title");

// `done` reasons of a reply cut short: stopped by a user, by a shutdown, or by its server's death.
const CUT_SHORT = new Set(["stopped", "interrupted", "server_lost"]);

let hasMore = false;
let loadingOlder = false;
// The first history after opening a conversation scrolls to its end; later ones keep the reader's place.
let firstHistory = true;

function codePoints(text) {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function titleShow(text) {
  title.textContent = text || "New chat";
  document.title = text ? `${text} · Dedalus Chat` : "Dedalus Chat";
}

/** A `title` frame: the model wrote the title (or it was renamed), shown here and in the sidebar. */
function onTitle(frame) {
  if (!title.querySelector("input")) titleShow(frame.title); // not while the user is renaming
  const detail = { sessionId: state.sessionId, title: frame.title };
  document.dispatchEvent(new CustomEvent("chat:titled", { detail }));
}

// --- scrolling ---

function nearBottom() {
  return chat.scrollHeight - chat.scrollTop - chat.clientHeight < 60;
}

function scrollFollow() {
  if (state.pinned) chat.scrollTop = chat.scrollHeight;
  jumpLatest.hidden = state.pinned || !list.lastElementChild;
}

chat.addEventListener("scroll", () => {
  state.pinned = nearBottom();
  jumpLatest.hidden = state.pinned;
  if (chat.scrollTop < 200) olderRequest();
});
jumpLatest.addEventListener("click", () => {
  state.pinned = true;
  scrollFollow();
  inputFocus();
});

// --- the thread ---

function messageAppend(message, before = null) {
  const view = messageView(message);
  state.shown.set(message.id, { message, view });
  list.insertBefore(view.root, before);
  emptyNote.hidden = true;
  return view;
}

/** A reply that ended without any text leaves its user message out of later requests (the server's
 * rule, conversations/chat/turns.py): mark that message. */
function unsentMark(reply) {
  if (reply.role !== "assistant" || reply.status === "streaming" || reply.content) return;
  if (reply.tool_calls && reply.tool_calls.length) return; // it called an API client's tools: it answered
  const asked = state.shown.get(reply.parent_id);
  if (asked && asked.message.role === "user") unsentShow(asked.view, true);
}

function lastShownId() {
  const last = list.querySelector("article:last-of-type");
  return last ? Number(last.dataset.messageId) : null;
}

function systemLine(text) {
  const line = document.createElement("div");
  line.className = "system";
  line.setAttribute("role", "alert");
  line.textContent = text;
  list.appendChild(line);
  scrollFollow();
}

/** Show a reply being streamed: its text so far from `offset` on, and its reasoning so far (its own
 * offsets, in `reasoning`). `startedAt` (when this tab saw it start) measures its thinking until `done`
 * says how long it was. */
function liveStart(message, content, offset, { reasoningOffset = 0, startedAt = null } = {}) {
  const view = messageAppend({ ...message, status: "streaming", content: "" });
  const renderer = new StreamingRenderer(view.content);
  const reasoning = { text: message.reasoning || "", offset: reasoningOffset, resyncing: false, changed: false };
  state.live = { messageId: message.id, view, renderer, text: content, offset, resyncing: false, frame: 0, reasoning, startedAt };
  if (view.reasoning) reasoningThinking(view.reasoning, !content);
  if (content) liveRender();
  controlsRefresh();
}

// Chunks can arrive hundreds of times a second: render at most once per frame.
function liveRenderSoon() {
  const live = state.live;
  if (live && !live.frame) live.frame = requestAnimationFrame(liveRender);
}

function liveRender() {
  const live = state.live;
  if (!live) return;
  live.frame = 0;
  if (live.reasoning.changed) {
    live.reasoning.changed = false;
    reasoningWords(live.view.reasoning, live.reasoning.text);
  }
  live.renderer.update(live.text);
  scrollFollow();
}

/** The reasoning block of the reply being streamed, made when its first reasoning arrives. */
function liveReasoningBlock(live) {
  if (!live.view.reasoning) {
    live.view.reasoning = reasoningView({ thinking: true });
    live.view.root.insertBefore(live.view.reasoning, live.view.tools);
    if (live.text) reasoningThinking(live.view.reasoning, false); // it thinks again after answering a while
  }
  return live.view.reasoning;
}

function liveFinish(frame, status, error) {
  const current = state.live && state.live.messageId === frame.message_id ? state.live : null;
  if (current && (current.resyncing || current.reasoning.resyncing)) {
    // The end overtook the text we asked for again: the stored reply is whole, so show that instead.
    transmit({ type: "history" });
    return;
  }
  if (current) {
    cancelAnimationFrame(current.frame);
    // The frame cancelled may have been the one to show the last reasoning: show it now, as the text.
    if (current.reasoning.changed && current.view.reasoning) {
      reasoningWords(current.view.reasoning, current.reasoning.text);
    }
    current.renderer.finish(current.text);
    state.live = null;
  }
  const stored = state.shown.get(frame.message_id);
  if (stored) {
    Object.assign(stored.message, { status, usage: frame.usage || null, error: error || "" });
    if (frame.finish_reason) stored.message.finish_reason = frame.finish_reason;
    if (frame.served_models) stored.message.served_models = frame.served_models;
    if (frame.tool_calls) {
      stored.message.tool_calls = frame.tool_calls;
      for (const call of frame.tool_calls) toolAdd(stored.view.tools, clientCallActivity(call));
    }
    if (current) {
      stored.message.content = current.text;
      stored.message.reasoning = current.reasoning.text;
    }
    stored.message.reasoning_ms = frame.reasoning_ms ?? null;
    if (frame.reasoning_ms != null) {
      // How long it thought, as the server measured it; a model that showed no words gets the line alone.
      if (!stored.view.reasoning) {
        stored.view.reasoning = reasoningView(stored.message);
        stored.view.root.insertBefore(stored.view.reasoning, stored.view.tools);
      }
      reasoningThinking(stored.view.reasoning, false, frame.reasoning_ms);
    } else if (stored.view.reasoning) {
      reasoningThinking(stored.view.reasoning, false);
    }
    if (frame.handoffs) {
      stored.message.handoffs = frame.handoffs;
      replyContentShow(stored.view.content, stored.message); // the markers where the models changed
    }
    endingShow(stored.view, stored.message);
    unsentMark(stored.message);
  }
  controlsRefresh();
  scrollFollow();
}

/** Stop showing the reply being streamed (its text is no longer this thread's). */
export function liveDrop() {
  if (state.live) cancelAnimationFrame(state.live.frame);
  state.live = null;
}

/** An empty thread for a conversation just opened; its history comes with the new socket. */
export function threadReset() {
  firstHistory = true;
  loadingOlder = false;
  state.shown = new Map();
  list.replaceChildren();
  hasMore = false;
  loadOlder.hidden = true;
  emptyNote.hidden = false;
  delete title.dataset.renamed;
  titleShow("");
}

// --- frames ---

function onHistory(frame) {
  const readingAt = state.pinned || firstHistory ? null : chat.scrollTop;
  firstHistory = false;
  loadingOlder = false;
  liveDrop();
  state.shown = new Map();
  list.replaceChildren();
  const conversation = frame.conversation;
  titleShow(conversation.title);
  // Whether it is stored yet (a new chat is not): the sidebar offers its menu only then.
  const stored = Boolean(conversation.created_at);
  document.dispatchEvent(new CustomEvent("chat:history", { detail: { sessionId: state.sessionId, stored } }));
  if (!state.controlsTouched) controlsFromConversation(conversation);
  const streaming = frame.streaming;
  for (const message of frame.messages) {
    if (streaming && message.id === streaming.message_id) continue;
    messageAppend(message);
    unsentMark(message);
  }
  if (streaming) {
    const message = frame.messages.find((m) => m.id === streaming.message_id) || { id: streaming.message_id };
    liveStart({ role: "assistant", ...message }, streaming.content, streaming.offset, {
      reasoningOffset: streaming.reasoning_offset || 0,
    });
  }
  hasMore = Boolean(frame.has_more);
  loadOlder.hidden = !hasMore;
  emptyNote.hidden = frame.messages.length > 0;
  const pending = state.pending;
  if (pending !== null) {
    if (frame.messages.some((m) => m.client_id === pending.clientId)) pendingSettle();
    else transmit(pending.frame); // lost with the old socket: send again, the same client id
  }
  controlsRefresh();
  state.pinned = readingAt === null;
  if (readingAt !== null) chat.scrollTop = readingAt; // another tab's branch change: stay where you read
  const anchor = state.anchor;
  state.anchor = null;
  const anchored = anchor && list.querySelector(`[data-message-id="${anchor.id}"]`);
  if (anchored) {
    chat.scrollTop += anchored.getBoundingClientRect().top - anchor.top; // the version switched to, in place
    state.pinned = nearBottom();
  }
  scrollFollow();
  performance.mark("chat:history-shown");
}

function onHistoryPage(frame) {
  loadingOlder = false;
  const first = list.querySelector("[data-message-id]");
  if (!first || Number(first.dataset.messageId) !== frame.before) return; // a stale answer
  const heightBefore = chat.scrollHeight;
  for (const message of frame.messages) {
    messageAppend(message, first);
    unsentMark(message);
  }
  chat.scrollTop += chat.scrollHeight - heightBefore; // keep what the user was reading in place
  hasMore = Boolean(frame.has_more);
  loadOlder.hidden = !hasMore;
}

function olderRequest() {
  const first = list.querySelector("[data-message-id]");
  if (!hasMore || loadingOlder || !first) return;
  loadingOlder = true;
  transmit({ type: "history", before: Number(first.dataset.messageId) });
}
loadOlder.addEventListener("click", olderRequest);

function onStart(frame) {
  const pending = state.pending;
  if (pending !== null) {
    const acknowledged = frame.user_message
      ? frame.user_message.client_id === pending.clientId
      : pending.frame.type === "regenerate";
    if (acknowledged) pendingSettle();
  }
  // Every turn is stored before its start (title set, conversation moved up): the sidebar follows.
  document.dispatchEvent(new CustomEvent("chat:reply-started", { detail: { sessionId: state.sessionId } }));
  if (state.live && state.live.messageId === frame.message_id) return; // a history frame already showed it
  // A reply on another branch (an edit, a regenerate, another tab's switch) replaces part of the
  // thread: ask for the whole new branch rather than guess it here.
  const anchor = frame.user_message ? frame.user_message.parent_id : frame.parent_id;
  if (anchor !== undefined && (anchor ?? null) !== lastShownId()) {
    transmit({ type: "history" });
    return;
  }
  if (frame.user_message) {
    messageAppend(frame.user_message);
    // A conversation's first message: its title as the server wrote it (conversations/chat/titles.py).
    if (frame.title && !title.dataset.renamed && title.textContent === "New chat") titleShow(frame.title);
  }
  const reply = {
    id: frame.message_id,
    parent_id: frame.parent_id,
    role: "assistant",
    model: frame.model,
    agent: frame.agent || null,
    created_at: new Date().toISOString(),
  };
  liveStart({ ...reply, context_dropped: frame.context_dropped || 0 }, "", 0, { startedAt: performance.now() });
  scrollFollow(); // follows if the user had not scrolled up (a send of ours pinned the view already)
}

/** What a chunk or reasoning frame adds to `stream` (the live reply, or its reasoning: each has its
 * `offset` and `resyncing`), or null: nothing new, or a gap, for which the rest is asked once (frames
 * past the gap wait for it). */
function spanNew(stream, frame, resync) {
  const end = frame.offset + codePoints(frame.content);
  if (end <= stream.offset) return null; // all of it is already shown
  if (frame.offset > stream.offset) {
    if (!stream.resyncing) {
      stream.resyncing = true;
      transmit({ ...resync, type: "resync", message_id: frame.message_id, offset: stream.offset });
    }
    return null;
  }
  let content = frame.content;
  if (frame.offset < stream.offset) {
    content = Array.from(content).slice(stream.offset - frame.offset).join(""); // keep only what is new
  }
  stream.offset = end;
  stream.resyncing = false;
  return content;
}

function onChunk(frame) {
  const live = state.live;
  if (!live || live.messageId !== frame.message_id) return;
  const content = spanNew(live, frame, {});
  if (content === null) return;
  if (!live.text && live.view.reasoning) {
    // The answer starts: the thinking folds away, saying how long it took (as this tab saw it).
    const ms = live.startedAt === null ? null : performance.now() - live.startedAt;
    reasoningThinking(live.view.reasoning, false, ms);
  }
  live.text += content;
  liveRenderSoon();
}

function onReasoning(frame) {
  const live = state.live;
  if (!live || live.messageId !== frame.message_id) return;
  const content = spanNew(live.reasoning, frame, { part: "reasoning" });
  if (content === null) return;
  liveReasoningBlock(live);
  live.reasoning.text += content;
  live.reasoning.changed = true;
  liveRenderSoon();
}

function onError(frame) {
  if (frame.message_id) {
    liveFinish(frame, "error", frame.message);
    return;
  }
  if (frame.code === "unavailable" && state.pending !== null) {
    socketRestart(); // this server is going away: reconnect (maybe to another) and resend
    return;
  }
  if (frame.code === "invalid_message" && loadingOlder) {
    loadingOlder = false; // the page asked for no longer exists (a branch switch): nothing to show
    return;
  }
  if (frame.code === "invalid_mcp_server") {
    mcpRefused(frame.message); // under the field that caused it: the thread stays the conversation's
    pendingRefused();
    return;
  }
  systemLine(`Error: ${frame.message}`);
  pendingRefused();
  if (frame.code === "budget_exceeded") document.dispatchEvent(new CustomEvent("chat:spent"));
}

/** One frame from the socket. */
export function onFrame(event) {
  let frame;
  try {
    frame = JSON.parse(event.data);
  } catch {
    return;
  }
  switch (frame.type) {
    case "history":
      onHistory(frame);
      break;
    case "history_page":
      onHistoryPage(frame);
      break;
    case "start":
      onStart(frame);
      break;
    case "chunk":
      onChunk(frame);
      break;
    case "reasoning":
      onReasoning(frame);
      break;
    case "title":
      onTitle(frame);
      break;
    case "duplicate":
      if (state.pending !== null && frame.client_id === state.pending.clientId) pendingSettle();
      break;
    case "tool":
      if (state.live && state.live.messageId === frame.message_id) {
        toolAdd(state.live.view.tools, frame);
        scrollFollow();
      }
      break;
    case "done":
      liveFinish(frame, CUT_SHORT.has(frame.finish_reason) ? "interrupted" : "complete");
      document.dispatchEvent(new CustomEvent("chat:spent")); // what is left of a budget changed
      if (!document.activeElement || document.activeElement === document.body) inputFocus();
      break;
    case "error":
      onError(frame);
      break;
    case "feedback":
      onFeedback(frame);
      break;
  }
}

/** Feedback kept by the server (from this tab or another): the reply's thumbs show it. */
function onFeedback(frame) {
  const entry = state.shown.get(frame.message_id);
  if (!entry) return;
  entry.message.feedback = frame.value ? { value: frame.value, comment: frame.comment || "" } : null;
  for (const [value, name] of [[1, "up"], [-1, "down"]]) {
    entry.view.root
      .querySelector(`[data-action=feedback-${name}]`)
      ?.setAttribute("aria-pressed", String(frame.value === value));
  }
}

document.addEventListener("chat:renamed", (event) => {
  if (event.detail.sessionId !== state.sessionId) return;
  title.dataset.renamed = "1";
  titleShow(event.detail.title);
});
