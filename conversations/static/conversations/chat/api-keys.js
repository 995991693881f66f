// "API keys": a signed-in user's keys to the OpenAI-compatible API, in a dialog over /api/api-keys/. A new
// key is shown once, with Copy, until the dialog closes; the list names each key by its prefix, and
// Revoke stops one at once. The page has no dialog for a visitor.

import { jsonRequest } from "./csrf.js";

const dialog = document.getElementById("api-keys-dialog");
const openButton = document.getElementById("api-keys-open");
const API = "/api/api-keys/";
const EXPIRY_DAYS = [7, 30, 90, 365]; // the choices offered, within the operator's maximum

const field = (id) => document.getElementById(id);
let keys = [];

function day(iso) {
  return new Date(iso).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

/** The expiry choices: "never" only where the operator sets no maximum, which is itself a choice. */
function expiryOptions(maxDays) {
  const select = field("api-key-expiry");
  const chosen = select.value;
  const days = maxDays ? [...new Set([...EXPIRY_DAYS.filter((n) => n < maxDays), maxDays])] : EXPIRY_DAYS;
  const options = days.map((n) => new Option(`in ${n} days`, String(n)));
  if (!maxDays) options.push(new Option("never", ""));
  select.replaceChildren(...options);
  select.value = days.map(String).includes(chosen) ? chosen : String(days.includes(30) ? 30 : days[0]);
}

function keyItem(key) {
  const item = document.createElement("li");
  const text = document.createElement("div");
  const name = document.createElement("strong");
  name.textContent = key.name || "Unnamed key";
  const meta = document.createElement("span");
  meta.className = "api-key-meta";
  const expiry = document.createElement("span");
  if (key.expired) expiry.className = "expired";
  expiry.textContent = key.expired ? "expired" : key.expires_at ? `expires ${day(key.expires_at)}` : "never expires";
  const used = key.last_used_at ? `last used ${day(key.last_used_at)}` : "never used";
  // A key the operator narrowed (in the admin) says what it may use.
  const scope = key.scope.length ? ` · only ${key.scope.join(", ")}` : "";
  meta.append(`${key.prefix}… · created ${day(key.created_at)} · `, expiry, ` · ${used}${scope}`);
  text.append(name, meta);
  const revoke = document.createElement("button");
  revoke.type = "button";
  revoke.className = "danger";
  revoke.textContent = "Revoke";
  revoke.setAttribute("aria-label", `Revoke ${key.name || key.prefix}`);
  revoke.addEventListener("click", () => keyRevoke(key));
  item.append(text, revoke);
  return item;
}

function listShow() {
  field("api-key-list").replaceChildren(...keys.map(keyItem));
}

async function keysLoad() {
  try {
    const answer = await jsonRequest("GET", API);
    keys = answer.keys;
    expiryOptions(answer.max_days);
    listShow();
    if (!keys.length) field("api-keys-status").textContent = "No keys yet.";
  } catch (error) {
    field("api-keys-status").textContent = error.message;
  }
}

async function keyCreate(event) {
  event.preventDefault();
  const status = field("api-keys-status");
  const expiry = field("api-key-expiry").value;
  let made;
  try {
    made = await jsonRequest("POST", API, {
      name: field("api-key-name").value.trim(),
      expires_days: expiry ? Number(expiry) : null,
    });
  } catch (error) {
    status.textContent = error.message;
    return;
  }
  const { key, ...row } = made;
  keys = [row, ...keys];
  listShow();
  field("api-key-name").value = "";
  field("api-key-new").hidden = false;
  field("api-key-value").value = key;
  status.textContent = `Key ${row.prefix}… created. Copy it now: it is not shown again.`;
  field("api-key-copy").focus();
}

async function keyRevoke(key) {
  const status = field("api-keys-status");
  try {
    await jsonRequest("DELETE", `${API}${key.id}/`);
  } catch (error) {
    status.textContent = error.message;
    return;
  }
  keys = keys.filter((one) => one.id !== key.id);
  listShow();
  status.textContent = `${key.name || key.prefix} revoked: it no longer works.`;
  field("api-key-name").focus();
}

async function keyCopy() {
  const value = field("api-key-value");
  try {
    await navigator.clipboard.writeText(value.value);
    field("api-keys-status").textContent = "Key copied.";
  } catch {
    value.select();
    field("api-keys-status").textContent = "Copy failed: the key is selected, copy it by hand.";
  }
}

function wire() {
  field("api-keys-base").textContent = `${window.location.origin}/v1`;
  openButton.addEventListener("click", () => {
    field("api-keys-status").textContent = "";
    keysLoad();
    dialog.showModal();
    field("api-key-name").focus();
  });
  field("api-key-form").addEventListener("submit", keyCreate);
  field("api-key-copy").addEventListener("click", keyCopy);
  field("api-keys-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    // A new key is shown once: closing the dialog forgets it.
    field("api-key-new").hidden = true;
    field("api-key-value").value = "";
    openButton.focus();
  });
}

if (dialog) wire();
