// Credentials of one's own for the MCP presets that ask for them: a key button beside each such preset
// opens a dialog whose password fields go to PUT /api/mcp-credentials/<id>/. Nothing is ever read back:
// the page only knows whether they are saved.

import { jsonRequest } from "./csrf.js";

const dialog = document.getElementById("credentials-dialog");
const form = document.getElementById("credentials-form");
const fields = document.getElementById("credentials-fields");
const errorLine = document.getElementById("credentials-error");
const title = document.getElementById("credentials-title");
const removeButton = document.getElementById("credentials-remove");
const cancelButton = document.getElementById("credentials-cancel");
const keyButtons = Array.from(document.querySelectorAll(".credentials-key"));
let open = null; // the key button whose dialog is shown

function savedShow(button, saved) {
  button.classList.toggle("saved", saved);
  button.textContent = saved ? "Key saved" : "Add key";
  button.title = saved ? "Your credentials are saved" : "Add your credentials";
}

function dialogOpen(button) {
  open = button;
  title.textContent = `Your credentials for ${button.dataset.label}`;
  if (fields) {
    const names = JSON.parse(document.getElementById(`credential-names-${button.dataset.preset}`).textContent);
    fields.replaceChildren(
      ...names.map((name) => {
        const label = document.createElement("label");
        label.className = "control";
        label.textContent = name;
        const input = document.createElement("input");
        input.type = "password";
        input.name = name;
        input.required = true;
        input.autocomplete = "off";
        input.spellcheck = false;
        label.append(input);
        return label;
      }),
    );
    errorLine.textContent = "";
    removeButton.hidden = !button.classList.contains("saved");
  }
  dialog.showModal();
}

function request(method, body) {
  return jsonRequest(method, `/api/mcp-credentials/${open.dataset.preset}/`, body);
}

function dialogClose() {
  if (fields) fields.replaceChildren(); // the typed values leave the page with the dialog
  dialog.close();
  open = null;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const values = Object.fromEntries(Array.from(fields.querySelectorAll("input"), (i) => [i.name, i.value]));
  try {
    await request("PUT", { values });
    savedShow(open, true);
    dialogClose();
  } catch (error) {
    errorLine.textContent = error.message;
  }
});
removeButton?.addEventListener("click", async () => {
  try {
    await request("DELETE");
    savedShow(open, false);
    dialogClose();
  } catch (error) {
    errorLine.textContent = error.message;
  }
});
cancelButton.addEventListener("click", dialogClose);
dialog.addEventListener("cancel", () => fields?.replaceChildren());
for (const button of keyButtons) button.addEventListener("click", () => dialogOpen(button));

/** Open the dialog of a checked preset that needs credentials not saved yet; whether it did (the
 * message then waits: the server would refuse it). */
export function credentialsAsk(selected) {
  const missing = keyButtons.find((b) => selected.includes(b.dataset.target) && !b.classList.contains("saved"));
  if (!missing) return false;
  dialogOpen(missing);
  return true;
}
