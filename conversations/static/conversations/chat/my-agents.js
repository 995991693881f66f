// "My agents": a signed-in user's own agents, built in a dialog (name, description, instructions, the
// model that answers and those it may hand off to, settings, MCP servers) over /api/my-agents/, and
// offered in the picker's "My agents" group. Saving one picks it; the server checks every field, and its
// refusal is shown under the form. The page has no dialog when the operator turned the feature off.

import { jsonRequest } from "./csrf.js";
import { agentsNamed } from "../messages.js";

const dialog = document.getElementById("agents-dialog");
const openButton = document.getElementById("my-agents-open");
const picker = document.getElementById("model");
const pickerLabel = document.getElementById("picker-label");
const listView = document.getElementById("agents-list-view");
const list = document.getElementById("own-agent-list");
const status = document.getElementById("agents-status");
const form = document.getElementById("agent-form");
const title = document.getElementById("agents-title");
const errorLine = document.getElementById("agent-error");
const field = (id) => document.getElementById(id);
const AGENT_PREFIX = "agent:";
const API = "/api/my-agents/";

const defaultModel = field("agent-model")?.value; // the catalog's default, as the template chose it
let agents = []; // the user's own, whole, as the API lists them
let editing = null; // the agent the form changes; null: a new one

// --- the picker ---

/** The picker's group of the user's agents, made (with a Models group around loose models) on first need. */
function ownGroup() {
  let group = picker.querySelector("optgroup[data-group=own]");
  if (group) return group;
  let models = picker.querySelector("optgroup[data-group=models]");
  if (!models) {
    models = document.createElement("optgroup");
    models.label = "Models";
    models.dataset.group = "models";
    models.append(...Array.from(picker.children).filter((node) => node.tagName === "OPTION"));
    picker.append(models);
  }
  group = document.createElement("optgroup");
  group.label = "My agents";
  group.dataset.group = "own";
  picker.insertBefore(group, models);
  pickerLabel.textContent = "Agent or model";
  return group;
}

/** Show the user's agents in the picker, and name replies by them; `pick` is a slug to choose. */
function pickerShow(pick = null) {
  const chosen = picker.value;
  const group = ownGroup();
  group.replaceChildren(
    ...agents.map((agent) => {
      const option = new Option(agent.name, AGENT_PREFIX + agent.slug);
      option.dataset.description = agent.description;
      option.dataset.name = agent.name;
      return option;
    }),
  );
  if (!agents.length) group.remove();
  agentsNamed([...operatorAgents, ...agents]);
  const wanted = pick ? AGENT_PREFIX + pick : chosen;
  const present = Array.from(picker.options).some((option) => option.value === wanted);
  picker.value = present ? wanted : (picker.querySelector("optgroup[data-group=models] option") || picker.options[0]).value;
  // The composer follows the picker's own event: the description, the MCP and settings controls.
  if (picker.value !== chosen || pick) picker.dispatchEvent(new Event("input"));
}

const agentsData = document.getElementById("agents-data");
const operatorAgents = (agentsData ? JSON.parse(agentsData.textContent) : []).filter(
  (agent) => !agent.slug.startsWith("my:"),
);

// --- the list ---

function listShow() {
  list.replaceChildren(
    ...agents.map((agent) => {
      const item = document.createElement("li");
      const text = document.createElement("div");
      const name = document.createElement("strong");
      name.textContent = agent.name;
      const about = document.createElement("span");
      about.className = "own-agent-about";
      about.textContent = agent.description || agent.models.join(" → ");
      text.append(name, about);
      const edit = document.createElement("button");
      edit.type = "button";
      edit.textContent = "Edit";
      edit.setAttribute("aria-label", `Edit ${agent.name}`);
      edit.addEventListener("click", () => formShow(agent));
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "danger";
      remove.textContent = "Delete";
      remove.setAttribute("aria-label", `Delete ${agent.name}`);
      remove.addEventListener("click", () => agentDelete(agent));
      item.append(text, edit, remove);
      return item;
    }),
  );
  if (!agents.length) status.textContent = "No agents yet.";
}

async function agentsLoad() {
  try {
    agents = (await jsonRequest("GET", API)).agents;
    listShow();
  } catch (error) {
    status.textContent = error.message;
  }
}

async function agentDelete(agent) {
  try {
    await jsonRequest("DELETE", `${API}${agent.id}/`);
  } catch (error) {
    status.textContent = error.message;
    return;
  }
  agents = agents.filter((one) => one.id !== agent.id);
  listShow();
  pickerShow();
  status.textContent = `${agent.name} deleted.`;
  document.getElementById("agent-new").focus();
}

// --- the form ---

function viewShow(formShown) {
  listView.hidden = formShown;
  form.hidden = !formShown;
  if (!formShown) title.textContent = "My agents";
}

function formShow(agent) {
  editing = agent;
  const settings = agent ? agent.settings : {};
  field("agent-name").value = agent ? agent.name : "";
  field("agent-about").value = agent ? agent.description : "";
  field("agent-instructions").value = agent ? agent.instructions : "";
  field("agent-model").value = agent ? agent.models[0] : defaultModel;
  for (const box of form.querySelectorAll(".agent-handoff")) box.checked = agent ? agent.models.slice(1).includes(box.value) : false;
  field("agent-temperature").value = settings.temperature ?? "";
  field("agent-max-tokens").value = settings.max_tokens ?? "";
  field("agent-reasoning").value = settings.reasoning_effort || "";
  field("agent-mcp-servers").value = agent ? agent.mcp_servers.join(", ") : "";
  handoffsFit();
  errorLine.textContent = "";
  status.textContent = "";
  title.textContent = agent ? `Edit ${agent.name}` : "New agent";
  viewShow(true);
  field("agent-name").focus();
}

/** The model that answers is no handoff of its own: its box is off while it is chosen. */
function handoffsFit() {
  const first = field("agent-model").value;
  for (const box of form.querySelectorAll(".agent-handoff")) {
    box.disabled = box.value === first;
    if (box.disabled) box.checked = false;
  }
}

/** The form as the API takes it: the chosen model first, then the handoff models in the page's order. */
function formValue() {
  const first = field("agent-model").value;
  const handoffs = Array.from(form.querySelectorAll(".agent-handoff:checked"), (box) => box.value);
  const settings = {};
  if (field("agent-temperature").value !== "") settings.temperature = Number(field("agent-temperature").value);
  if (field("agent-max-tokens").value !== "") settings.max_tokens = Number(field("agent-max-tokens").value);
  if (field("agent-reasoning").value) settings.reasoning_effort = field("agent-reasoning").value;
  return {
    name: field("agent-name").value,
    description: field("agent-about").value,
    instructions: field("agent-instructions").value,
    models: [first, ...handoffs],
    settings,
    mcp_servers: field("agent-mcp-servers").value.split(/[\s,]+/).filter(Boolean),
  };
}

async function formSubmit(event) {
  event.preventDefault();
  for (const input of [field("agent-name"), field("agent-temperature"), field("agent-max-tokens")]) {
    if (!input.checkValidity()) {
      input.reportValidity();
      return;
    }
  }
  let saved;
  try {
    saved = editing
      ? await jsonRequest("PUT", `${API}${editing.id}/`, formValue())
      : await jsonRequest("POST", API, formValue());
  } catch (error) {
    errorLine.textContent = error.message;
    return;
  }
  agents = editing ? agents.map((one) => (one.id === saved.id ? saved : one)) : [...agents, saved];
  agents.sort((a, b) => a.name.localeCompare(b.name));
  pickerShow(saved.slug);
  dialog.close();
}

// --- opening and closing ---

function wire() {
  openButton.addEventListener("click", () => {
    if (form) {
      viewShow(false);
      status.textContent = "";
      agentsLoad();
    }
    dialog.showModal();
  });
  document.getElementById("agents-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => openButton.focus());
  if (!form) return; // a visitor's dialog only says to sign in
  form.addEventListener("submit", formSubmit);
  field("agent-model").addEventListener("input", handoffsFit);
  field("agent-new").addEventListener("click", () => formShow(null));
  field("agent-back").addEventListener("click", () => {
    viewShow(false);
    field("agent-new").focus();
  });
}

if (dialog) wire();
