// The reply settings panel: temperature, max tokens, reasoning effort and thinking budget of the user's
// own for this conversation (the server keeps them with it; history brings them back). Open to a plain
// model and to an agent that allows them; a field left empty means the model's (or the agent's) default.
// Reasoning effort and thinking budget are offered only for a model whose catalog says it thinks.

const panel = document.getElementById("reply-settings");
const fields = document.getElementById("settings-fields");
const note = document.getElementById("settings-note");
const temperature = document.getElementById("setting-temperature");
const maxTokens = document.getElementById("setting-max-tokens");
const reasoning = document.getElementById("setting-reasoning-effort");
const reasoningControl = document.getElementById("setting-reasoning-control");
const thinkingBudget = document.getElementById("setting-thinking-budget");
const thinkingControl = document.getElementById("setting-thinking-control");
const summary = document.getElementById("settings-summary");

function summaryShow() {
  const chosen = settingsChosen() || {};
  const parts = Object.entries(chosen).map(([name, value]) => `${name.replace("_", " ")} ${value}`);
  summary.textContent = parts.length ? `Settings: ${parts.join(", ")}` : "Settings";
}

/** Whether the choice in the picker takes settings of the user's own, its output limit, and whether it
 * thinks (reasoning effort then applies). */
export function settingsAllow(allowed, { outputLimit = null, owner = "", thinks = true } = {}) {
  fields.disabled = !allowed;
  for (const [control, field] of [[reasoningControl, reasoning], [thinkingControl, thinkingBudget]]) {
    control.hidden = !thinks;
    field.disabled = !thinks;
  }
  summaryShow();
  note.textContent = allowed ? "Empty: the default." : `${owner} answers with its own settings.`;
  maxTokens.max = outputLimit || "";
  panel.classList.toggle("locked", !allowed);
}

/** The settings the panel holds, as a frame's `settings` (undefined when the choice takes none). */
export function settingsChosen() {
  if (fields.disabled) return undefined;
  const chosen = {};
  if (temperature.value !== "") chosen.temperature = Number(temperature.value);
  if (maxTokens.value !== "") chosen.max_tokens = Number(maxTokens.value);
  if (reasoning.value && !reasoning.disabled) chosen.reasoning_effort = reasoning.value;
  if (thinkingBudget.value !== "" && !thinkingBudget.disabled) chosen.thinking_budget = Number(thinkingBudget.value);
  return chosen;
}

export function settingsFromConversation(conversation) {
  const settings = conversation.settings || {};
  temperature.value = settings.temperature ?? "";
  maxTokens.value = settings.max_tokens ?? "";
  reasoning.value = settings.reasoning_effort || "";
  thinkingBudget.value = settings.thinking_budget ?? "";
  summaryShow();
}

/** A field that is not valid: the browser's own message, shown on the field (nothing is sent). */
export function settingsValid() {
  for (const field of [temperature, maxTokens, thinkingBudget]) {
    if (!field.checkValidity()) {
      panel.open = true;
      field.reportValidity();
      return false;
    }
  }
  return true;
}

for (const field of [temperature, maxTokens, reasoning, thinkingBudget]) field.addEventListener("input", summaryShow);
