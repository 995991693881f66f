// How one message looks: its header (who, model, time, status badge), reasoning, tool activity, content (markdown
// for replies, plain text for the user's words), usage or error line, and its actions. Actions are
// buttons with a data-action attribute; chat/actions.js handles their clicks for the whole thread.
// User, model and tool text only reaches the DOM as text (markdown goes through DOMPurify).

import { render as markdownRender } from "./markdown.js";
import { reasoningView } from "./reasoning.js";

const BADGES = { interrupted: "Stopped", error: "Error" };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function button(action, label, ariaLabel) {
  const node = el("button", `message-action ${action}`, label);
  node.type = "button";
  node.dataset.action = action;
  if (ariaLabel) node.setAttribute("aria-label", ariaLabel);
  return node;
}

function timeElement(iso) {
  const time = el("time", "time");
  if (!iso) return time;
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  const clock = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  time.dateTime = iso;
  time.title = date.toLocaleString();
  time.textContent = today ? clock : `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${clock}`;
  return time;
}

function tokensText(usage) {
  return usage ? `${usage.total_tokens} tokens` : "";
}

// A reply cut short by its user is no failure: it says so calmly, with what it used.
const ROLE_NAMES = { user: "You", assistant: "Assistant", tool: "Tool result" };
const CUT_SHORT_TEXT = { stopped: "Stopped", interrupted: "Cut short: the server restarted", server_lost: "Cut short: its server stopped" };

function statusText(message) {
  if (message.status === "error") return `Error: ${message.error || "the reply failed"}`;
  if (message.status === "interrupted") {
    const why = CUT_SHORT_TEXT[message.finish_reason] || message.error || "Stopped before the end";
    // What it wrote before it stopped, not the prompt it was sent with (the hover detail has both).
    const written = message.usage ? `${message.usage.completion_tokens} tokens written` : "";
    return [why, written].filter(Boolean).join(" · ");
  }
  if (message.status === "complete") return tokensText(message.usage);
  return "";
}

/** A finished reply's text as markdown, with a marker where each handoff happened: the text is cut
 * at each handoff's code-point offset and each part rendered on its own. */
export function replyContentShow(content, message) {
  const text = message.content || "";
  const handoffs = (message.handoffs || []).filter((h) => h.offset > 0);
  if (!handoffs.length) {
    content.replaceChildren(markdownRender(text));
    return;
  }
  const points = Array.from(text);
  const parts = [];
  let start = 0;
  for (const handoff of handoffs) {
    parts.push(markdownRender(points.slice(start, handoff.offset).join("")));
    const marker = el("div", "handoff-marker");
    marker.setAttribute("role", "note");
    marker.append(el("span", "handoff-arrow", "↪"), ` handed off to ${modelLabel(handoff.model)}`);
    parts.push(marker);
    start = Math.max(start, handoff.offset);
  }
  parts.push(markdownRender(points.slice(start).join("")));
  content.replaceChildren(...parts);
}

let agentsBySlug = null;
/** An agent the page offers, by slug (its name and colour), or undefined (one no longer offered). */
function agentOf(slug) {
  if (agentsBySlug === null) {
    const node = document.getElementById("agents-data");
    agentsBySlug = new Map((node ? JSON.parse(node.textContent) : []).map((agent) => [agent.slug, agent]));
  }
  return agentsBySlug.get(slug);
}

/** The page's agents changed (a user built, renamed or deleted one of their own): name replies by these. */
export function agentsNamed(agents) {
  agentsBySlug = new Map(agents.map((agent) => [agent.slug, agent]));
}

/** The agent a reply was asked of, by name, with its colour's mark. */
function agentLabel(slug) {
  const agent = agentOf(slug);
  // A user's own agent that is gone (or another's, on a shared page) has only its random slug to show.
  const label = el("span", "agent-name", agent ? agent.name : slug.startsWith("my:") ? "Own agent" : slug);
  if (agent && /^#[0-9a-fA-F]{6}$/.test(agent.colour || "")) label.style.setProperty("--agent-colour", agent.colour);
  return label;
}

export function sizeText(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** A user message's attachments: a thumbnail per image, a chip per file, each its owner's link (a
 * shared conversation's: their names only). */
function attachmentsView(attachments) {
  if (!attachments || !attachments.length) return null;
  const list = el("ul", "message-attachments");
  for (const attachment of attachments) {
    const item = el("li");
    if (!attachment.url) {
      // A shared conversation names its files but never serves them.
      const chip = el("span", "attachment-file attachment-named");
      chip.append(el("span", "attachment-name", attachment.name), el("span", "attachment-size", sizeText(attachment.size)));
      item.append(chip);
      list.append(item);
      continue;
    }
    const link = el("a");
    link.href = attachment.url;
    if (attachment.content_type.startsWith("image/")) {
      link.target = "_blank";
      link.rel = "noopener";
      link.className = "attachment-image";
      const img = el("img");
      img.src = attachment.url;
      img.alt = attachment.name;
      img.loading = "lazy";
      link.append(img);
    } else {
      link.className = "attachment-file";
      link.download = attachment.name;
      const size = sizeText(attachment.size) + (attachment.reading_text ? " · reading text…" : "");
      link.append(el("span", "attachment-name", attachment.name), el("span", "attachment-size", size));
    }
    item.append(link);
    list.append(item);
  }
  return list;
}

/** "N older messages left out": a reply whose request dropped the oldest turns to fit the window. */
function contextNote(message) {
  const dropped = message.context_dropped || 0;
  if (!dropped) return null;
  const words = dropped === 1 ? "1 older message was" : `${dropped} older messages were`;
  return el("p", "context-note", `${words} left out to fit the model's context window.`);
}

/** Under a user message whose reply ended without any text: the server leaves it out of later
 * requests (conversations/chat/turns.py), and the page says so; its Edit (and the reply's Retry) send it again. */
export function unsentShow(view, unsent) {
  let note = view.root.querySelector(":scope > .unsent-note");
  if (!unsent) {
    note?.remove();
    return;
  }
  if (note) return;
  note = el("p", "unsent-note", "Not sent with later messages: it got no reply. Edit it, or retry its reply, to send it again.");
  note.setAttribute("role", "note");
  view.root.insertBefore(note, view.actions);
}

/** One entry per tool call, its result filled in when it arrives: "used tool X" with both. */
/** An API client's tool call (OpenAI's `{id, function: {name, arguments}}`) as a tool entry shows one. */
export function clientCallActivity(call) {
  let args = call.function.arguments;
  try {
    args = JSON.parse(args);
  } catch {
    // shown as the text it is
  }
  return { phase: "call", name: call.function.name, arguments: args };
}

export function toolAdd(container, activity) {
  if (activity.phase === "result") {
    const open = Array.from(container.querySelectorAll(".tool:not(.has-result)")).find(
      (entry) => entry.dataset.tool === activity.name,
    );
    if (open) {
      toolResultFill(open, activity);
      return;
    }
  }
  const details = el("details", "tool");
  details.dataset.tool = activity.name;
  const summary = el("summary");
  summary.append("used tool ", el("strong", "", activity.name));
  if (activity.server) summary.append(el("span", "tool-server", ` on ${activity.server}`));
  details.appendChild(summary);
  if (activity.arguments !== undefined && activity.arguments !== null) {
    details.append(el("div", "tool-label", "Arguments"), el("pre", "", JSON.stringify(activity.arguments, null, 2)));
  }
  container.appendChild(details);
  if (activity.phase === "result") toolResultFill(details, activity);
}

function toolResultFill(entry, activity) {
  entry.classList.add("has-result");
  const summary = entry.querySelector("summary");
  if (activity.server && !summary.querySelector(".tool-server")) {
    summary.appendChild(el("span", "tool-server", ` on ${activity.server}`));
  }
  if (activity.duration_ms != null) {
    const ms = activity.duration_ms;
    summary.appendChild(el("span", "tool-duration", ms < 1000 ? ` · ${Math.round(ms)} ms` : ` · ${(ms / 1000).toFixed(1)} s`));
  }
  if (activity.is_error) entry.classList.add("failed");
  const body = typeof activity.result === "string" ? activity.result : JSON.stringify(activity.result, null, 2);
  entry.append(el("div", "tool-label", activity.is_error ? "Error" : "Result"), el("pre", "", body));
}

function branchNav(message) {
  const siblings = message.siblings || [];
  if (siblings.length < 2) return null;
  const index = siblings.indexOf(message.id);
  const nav = el("span", "branch-nav");
  const previous = button("branch-prev", "‹", "Previous version");
  const next = button("branch-next", "›", "Next version");
  previous.disabled = index <= 0;
  next.disabled = index >= siblings.length - 1;
  nav.append(previous, el("span", "branch-pos", `${index + 1}/${siblings.length}`), next);
  return nav;
}

/** Fill (or refill) the parts of a message that change when it ends: badge, status line, actions. */
/** The usage detail on hover: prompt and completion tokens, and reasoning and cached ones when reported. */
function usageDetail(usage) {
  const parts = [`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`];
  if (usage.reasoning_tokens != null) parts.push(`${usage.reasoning_tokens} reasoning`);
  if (usage.cached_tokens != null) parts.push(`${usage.cached_tokens} cached`);
  return parts.join(", ");
}

let labelsByModel = null;
/** A model's label as the picker shows it ("GPT-5.1") or, on a page without one (a shared chat), as
 * its `model-labels` data names it; its id when neither knows it. */
function modelLabel(name) {
  if (labelsByModel === null) {
    const data = document.getElementById("model-labels");
    labelsByModel = new Map(data ? Object.entries(JSON.parse(data.textContent)) : []);
    for (const option of document.querySelectorAll("#model option:not([value^='agent:'])")) {
      labelsByModel.set(option.value, option.textContent.trim());
    }
  }
  return labelsByModel.get(name) || name;
}

/** The models that wrote a reply, by label, in order ("A → B" after a handoff), else the one it asked
 * for; the ids stay on hover. */
function modelShow(view, message) {
  if (!view.model) return;
  const served = message.served_models || [];
  const names = served.length ? served : [message.model].filter(Boolean);
  view.model.textContent = names.map(modelLabel).join(" → ");
  view.model.classList.toggle("handoff", served.length > 1);
  view.model.title = served.length > 1 ? `Handed off from ${served[0]} to ${served[served.length - 1]}` : names.join("");
}

export function endingShow(view, message) {
  const { root } = view;
  root.classList.remove("streaming", "complete", "interrupted", "error");
  root.classList.add(message.status || "complete");
  const stoppedByUser = message.status === "interrupted" && message.finish_reason === "stopped";
  root.classList.toggle("stopped", stoppedByUser);
  const badge = message.finish_reason === "refusal" ? "Refused" : stoppedByUser ? "" : BADGES[message.status] || "";
  view.badge.textContent = badge;
  view.badge.hidden = !badge;
  view.status.textContent = statusText(message);
  if (message.usage) view.status.title = usageDetail(message.usage);
  modelShow(view, message);
  const actions = view.actions;
  actions.replaceChildren();
  if (message.status === "streaming") return;
  const nav = branchNav(message);
  if (nav) actions.appendChild(nav);
  actions.appendChild(button("copy-message", "Copy", "Copy this message"));
  if (view.readOnly) return; // a shared conversation: nothing to edit, regenerate or rate
  if (message.role === "tool") return; // an API client's tool result: its client's to change
  if (message.role === "user") {
    actions.appendChild(button("edit", "Edit", "Edit and resend this message"));
  } else if (message.status === "error" || message.status === "interrupted") {
    actions.appendChild(button("regenerate", "Retry", "Retry this reply"));
  } else {
    actions.appendChild(button("regenerate", "Regenerate", "Regenerate this reply"));
  }
  if (message.role === "assistant") {
    const given = message.feedback ? message.feedback.value : 0;
    for (const [value, name, label, aria] of [[1, "up", "Good", "Good reply"], [-1, "down", "Bad", "Bad reply"]]) {
      const thumb = button(`feedback-${name}`, label, aria);
      thumb.setAttribute("aria-pressed", String(given === value));
      actions.appendChild(thumb);
    }
  }
}

/** A message's element and the parts that change later; `readOnly` (a shared conversation) offers
 * Copy only. */
export function messageView(message, { readOnly = false } = {}) {
  // A tool result (an API client's) is plain text, as the user's messages are.
  const isUser = message.role === "user" || message.role === "tool";
  const root = el("article", `message ${message.role}`);
  root.dataset.messageId = message.id;
  const head = el("div", "message-head");
  head.appendChild(el("span", "role", ROLE_NAMES[message.role] || "Assistant"));
  if (!isUser && message.agent) head.appendChild(agentLabel(message.agent));
  const model = isUser ? null : el("span", "model");
  if (model) head.appendChild(model);
  head.appendChild(timeElement(message.created_at));
  const badge = el("span", "badge");
  badge.hidden = true;
  head.appendChild(badge);
  const reasoning = isUser ? null : reasoningView(message);
  const tools = el("div", "tools");
  for (const activity of message.tools || []) toolAdd(tools, activity);
  for (const call of message.tool_calls || []) toolAdd(tools, clientCallActivity(call));
  const content = el("div", isUser ? "content plain-text" : "content markdown");
  if (isUser) content.textContent = message.content || "";
  else if (message.status !== "streaming") replyContentShow(content, message);
  const status = el("div", "status");
  const actions = el("div", "message-actions");
  const note = isUser ? null : contextNote(message);
  const attached = isUser ? attachmentsView(message.attachments) : null;
  root.append(...[head, note, reasoning, tools, attached, content, status, actions].filter(Boolean));
  const view = { root, content, reasoning, tools, status, actions, badge, model, readOnly };
  endingShow(view, message);
  if (message.status === "streaming") root.classList.add("streaming");
  return view;
}

/** Copy `text` for a Copy button, which says how it went for a moment (and so does #announcer: the
 * button's aria-label would hide the change). */
export async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  const announcer = document.getElementById("announcer");
  if (announcer) announcer.textContent = button.textContent;
  setTimeout(() => {
    button.textContent = "Copy";
  }, 1500);
}
