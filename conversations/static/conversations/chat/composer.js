// The composer: the message box, the model and MCP controls (checked as you type), and the frames that
// start a reply (a message, an edit, a regenerate), kept pending until the server acknowledges them.
// Also what the controls show of the page's state: Send disabled while busy, Stop while a reply streams.
// On a phone the controls wait behind one "Options" row that names the model.

import { busy, state } from "./state.js";
import { socketOpen, transmit } from "./socket.js";
import { credentialsAsk } from "./credentials.js";
import { attachmentsChosen, attachmentsClear, attachmentsUploading } from "./attachments.js";
import { settingsAllow, settingsChosen, settingsFromConversation, settingsValid } from "./settings-panel.js";
import { mcpCheckSoon } from "./mcp-check.js";

const chat = document.getElementById("chat");
const list = document.getElementById("messages");
const form = document.getElementById("composer");
const input = document.getElementById("input");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const modelSelect = document.getElementById("model");
const agentDescription = document.getElementById("agent-description");
const mcpControls = document.getElementById("mcp-controls");
const agentMcp = document.getElementById("agent-mcp");
const emptyHint = document.getElementById("empty-chat");
const EMPTY_HINT = emptyHint.textContent;
// An agent's option is "agent:<slug>"; a model's is its name.
const AGENT_PREFIX = "agent:";
const mcpInput = document.getElementById("mcp");
const mcpError = document.getElementById("mcp-error");
const presetBoxes = Array.from(document.querySelectorAll(".mcp-preset"));
const optionsToggle = document.getElementById("options-toggle");
const optionsSummary = document.getElementById("options-summary");

// The server's own slug rule (conversations/validators.py), given by the page: a typo shows while typing.
const MCP_SLUG_RE = new RegExp(mcpInput.dataset.slugPattern);

function newClientId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function inputFocus() {
  input.focus();
}

export function controlsRefresh() {
  const isBusy = busy();
  // One button where Send is: Stop while a reply streams.
  sendButton.disabled = isBusy;
  sendButton.hidden = state.live !== null;
  stopButton.hidden = state.live === null;
  chat.setAttribute("aria-busy", String(state.live !== null));
  for (const action of list.querySelectorAll("[data-action=regenerate], [data-action=edit], .branch-nav button")) {
    action.toggleAttribute("aria-disabled", isBusy);
  }
}

// The message box grows with its text, up to 40% of the window.
function inputFit() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight + 2, window.innerHeight * 0.4)}px`;
}

export function pendingSettle() {
  const pending = state.pending;
  if (pending !== null && pending.clearsInput && input.value === pending.frame.message) {
    input.value = "";
    inputFit();
    lengthShow();
    attachmentsClear();
  }
  if (pending !== null && pending.editor) pending.editor.close();
  state.pending = null;
  controlsRefresh();
}

/** The server refused the pending frame: nothing was stored, so the words stay where they were typed. */
export function pendingRefused() {
  if (state.pending !== null && state.pending.editor) state.pending.editor.reopen();
  state.pending = null;
  controlsRefresh();
}

// --- the controls ---

function hasOption(value) {
  return Array.from(modelSelect.options).some((o) => o.value === value);
}

// The page's agents by slug: the MCP servers each uses, named as the page shows them.
const agentsBySlug = new Map(
  JSON.parse(document.getElementById("agents-data").textContent || "[]").map((agent) => [agent.slug, agent]),
);

/** Under the greyed MCP controls, the servers the agent uses instead, as read-only chips. */
function agentMcpShow(option) {
  const agent = option ? agentsBySlug.get(option.value.slice(AGENT_PREFIX.length)) : undefined;
  agentMcp.hidden = !agent;
  // The empty chat's hint offers MCP servers only where they can be picked.
  emptyHint.textContent = agent ? `Ask anything. ${agent.name} answers; pick another agent or a model below.` : EMPTY_HINT;
  if (!agent) {
    agentMcp.replaceChildren();
    return;
  }
  const names = agent.mcp_names || [];
  if (!names.length) {
    agentMcp.textContent = `${agent.name} uses no MCP servers.`;
    return;
  }
  // Each name a chip; the commas between them are for screen readers (the line describes the picker).
  const parts = [];
  for (const name of names) {
    if (parts.length) parts.push(Object.assign(document.createElement("span"), { className: "visually-hidden", textContent: ", " }));
    parts.push(Object.assign(document.createElement("span"), { className: "chip readonly", textContent: name }));
  }
  agentMcp.replaceChildren(`${agent.name} uses these MCP servers: `, ...parts);
}

/** What the picker's choice shows: an agent's description, and the MCP controls off (it has its own,
 * named under them). */
function answererShow() {
  const option = modelSelect.selectedOptions[0];
  const description = option && option.value.startsWith(AGENT_PREFIX) ? option.dataset.description || "" : "";
  agentDescription.textContent = description;
  agentDescription.hidden = !description;
  const isAgent = Boolean(option && option.value.startsWith(AGENT_PREFIX));
  mcpControls.disabled = isAgent;
  agentMcpShow(isAgent ? option : null);
  optionsSummaryShow();
  if (isAgent) settingsAllow("settingsEditable" in option.dataset, { owner: option.dataset.name });
  else {
    const outputLimit = option ? Number(option.dataset.outputLimit) || null : null;
    settingsAllow(true, { outputLimit, thinks: Boolean(option && "thinks" in option.dataset) });
  }
}

export function controlsFromConversation(conversation) {
  const agentChoice = conversation.agent ? AGENT_PREFIX + conversation.agent : null;
  if (agentChoice && hasOption(agentChoice)) {
    modelSelect.value = agentChoice;
  } else if (conversation.model && hasOption(conversation.model)) {
    modelSelect.value = conversation.model;
  }
  answererShow();
  const servers = new Set(conversation.mcp_servers || []);
  for (const box of presetBoxes) box.checked = servers.has(box.value);
  mcpInput.value = [...servers].filter((s) => !presetBoxes.some((b) => b.value === s)).join(", ");
  mcpValidate();
  optionsSummaryShow();
  settingsFromConversation(conversation);
}

/** At once, what needs no rule of the server's but its slug pattern: neither a slug nor a URL at all.
 * Whether a URL is one the server accepts (https, no credentials, no private host) is its check's to
 * say (mcp-check.js), in its own words. */
function mcpTargetError(target) {
  if (MCP_SLUG_RE.test(target)) return "";
  try {
    new URL(target);
    return "";
  } catch {
    // The server's words for it, quoted as the server quotes (validators.quoted).
    return `'${target}': An MCP server must be a slug like org/name or an https:// URL.`;
  }
}

function typedServers() {
  return mcpInput.value.split(/[\s,]+/).filter(Boolean);
}

// The server's last verdict: the servers it judged (joined by commas) and its refusal ("" when fine).
let serverVerdict = { key: "", message: "" };

/** Show the field's error: the shape check's at once, else the server's verdict on these very servers. */
function mcpValidate() {
  const shapeError = typedServers().map(mcpTargetError).find(Boolean) || "";
  const refused = serverVerdict.key === selectedServers().join(",") ? serverVerdict.message : "";
  const error = shapeError || refused;
  mcpError.textContent = error;
  mcpInput.setAttribute("aria-invalid", String(Boolean(error)));
  return !error;
}

/** Check as you type: the shape here and now, the rest by the server once typing pauses. */
function mcpCheck() {
  if (!mcpValidate() || modelSelect.value.startsWith(AGENT_PREFIX)) return;
  mcpCheckSoon(selectedServers(), (key, message) => {
    serverVerdict = { key, message };
    mcpValidate();
  });
}

/** The server refused these servers (a turn's `invalid_mcp_server`): say so under the field, not in the thread. */
export function mcpRefused(message) {
  serverVerdict = { key: selectedServers().join(","), message };
  mcpError.textContent = message;
  mcpInput.setAttribute("aria-invalid", "true");
  mcpFieldFocus();
}

function mcpFieldFocus() {
  optionsShow(true); // on a phone the field may be folded away
  mcpInput.focus();
}

// --- the Options row (phones) ---

function optionsShow(open) {
  form.classList.toggle("options-open", open);
  optionsToggle.setAttribute("aria-expanded", String(open));
}

/** The folded row names what the controls hold: the model or agent, and the MCP servers chosen. */
function optionsSummaryShow() {
  const option = modelSelect.selectedOptions[0];
  const count = modelSelect.value.startsWith(AGENT_PREFIX) ? 0 : selectedServers().length;
  optionsSummary.textContent = (option ? option.textContent : "") + (count ? ` · ${count} MCP` : "");
}

function selectedServers() {
  const picked = presetBoxes.filter((box) => box.checked).map((box) => box.value);
  return [...new Set([...picked, ...typedServers()])];
}

/** The frame's fields for the picker's choice: an agent (with its own MCP servers) or a model and the servers. */
function answererChosen() {
  const choice = modelSelect.value;
  const settings = settingsChosen();
  const chosen = choice.startsWith(AGENT_PREFIX)
    ? { agent: choice.slice(AGENT_PREFIX.length) }
    : { model: choice, mcp_servers: selectedServers() };
  return settings === undefined ? chosen : { ...chosen, settings };
}

function canSend() {
  if (!socketOpen() || busy()) return false;
  if (!settingsValid()) return false;
  if (modelSelect.value.startsWith(AGENT_PREFIX)) return true;
  if (!mcpValidate()) {
    mcpFieldFocus();
    return false;
  }
  return !credentialsAsk(selectedServers());
}

/** Send a frame that starts a reply (message, edit or regenerate), resent until acknowledged. */
export function replyRequest(frame, { clearsInput = false, editor = null } = {}) {
  if (!canSend()) return false;
  const clientId = newClientId();
  state.pending = {
    clientId,
    clearsInput,
    editor,
    frame: { ...frame, ...answererChosen(), client_id: clientId },
  };
  state.pinned = true;
  controlsRefresh();
  transmit(state.pending.frame);
  return true;
}

const inputCount = document.getElementById("input-count");
const MAX_CHARS = Number(input.dataset.maxChars) || Infinity;

/** Near the server's limit, the box counts; past it, it says so and the message is held back. */
function lengthShow() {
  const length = [...input.value].length; // characters, as the server counts them (not UTF-16 units)
  const over = length > MAX_CHARS;
  inputCount.hidden = length <= MAX_CHARS * 0.9;
  inputCount.textContent = over
    ? `${length} / ${MAX_CHARS} characters: shorten it to send`
    : `${length} / ${MAX_CHARS} characters`;
  inputCount.classList.toggle("over", over);
  input.setAttribute("aria-invalid", String(over));
  return !over;
}

function send() {
  const text = input.value;
  if (!lengthShow()) {
    input.focus();
    return; // the count under the box says why
  }
  const attachments = attachmentsChosen();
  if (!text.trim() && !attachments.length) return;
  if (attachmentsUploading()) return; // Send again once they are up (the chips show their progress)
  const frame = attachments.length ? { message: text, attachments } : { message: text };
  if (replyRequest(frame, { clearsInput: true })) {
    optionsShow(false); // a phone gives the thread its room back
    input.focus(); // Send is disabled now
  }
}

for (const control of [modelSelect, mcpInput, ...presetBoxes]) {
  control.addEventListener("input", () => {
    state.controlsTouched = true;
    if (control !== modelSelect) mcpCheck();
    if (control === modelSelect) answererShow();
    optionsSummaryShow();
  });
}
optionsToggle.addEventListener("click", () => optionsShow(!form.classList.contains("options-open")));
answererShow();
form.addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
input.addEventListener("input", inputFit);
input.addEventListener("input", lengthShow);
