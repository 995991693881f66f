// The share dialog of one conversation: create its link (a read-only snapshot of the active branch, taken
// now), show it with Copy, choose "signed-in users only" (which takes the snapshot again, same link), and
// stop sharing. Talks to /c/<id>/share: GET tells the link, POST makes or refreshes it, DELETE revokes it.

import { csrfToken } from "./csrf.js";

const dialog = document.getElementById("share-dialog");
const intro = document.getElementById("share-intro");
const linkRow = document.getElementById("share-link-row");
const link = document.getElementById("share-link");
const copy = document.getElementById("share-copy");
const loginOnly = document.getElementById("share-login-only");
const create = document.getElementById("share-create");
const stop = document.getElementById("share-stop");
const status = document.getElementById("share-status");
let sessionId = null;
let returnFocus = null;

function shareUrl(id) {
  return `/c/${encodeURIComponent(id)}/share`;
}

function show(shared) {
  linkRow.hidden = !shared;
  stop.hidden = !shared;
  create.textContent = shared ? "Update link" : "Create link";
  intro.textContent = shared
    ? "Anyone with this link can read this chat as it was when shared. Update it to share the messages since."
    : "Share a read-only copy of this chat as it is now: later messages are not included. Attached files are named, not shared.";
  if (shared) {
    link.value = shared.url;
    loginOnly.checked = shared.login_required;
  }
}

/** Tell the page whether the open chat now has a link (the sidebar's menu asks for it next time). */
function sharedTell(shared) {
  document.dispatchEvent(new CustomEvent("chat:shared", { detail: { sessionId, shared } }));
}

async function request(method, body) {
  const response = await fetch(shareUrl(sessionId), {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response;
}

async function shareCreate() {
  const response = await request("POST", { login_required: loginOnly.checked });
  if (!response.ok) {
    // The server says why when it can (e.g. share_too_large); a chat not stored yet answers 404.
    const refusal = response.status === 413 ? await response.json().catch(() => null) : null;
    status.textContent = refusal?.message || "This chat could not be shared: send a message first.";
    return;
  }
  show(await response.json());
  sharedTell(true);
  status.textContent = loginOnly.checked ? "Link ready, for signed-in users only." : "Link ready.";
  link.focus();
  link.select();
}

create.addEventListener("click", shareCreate);
loginOnly.addEventListener("change", () => {
  if (!linkRow.hidden) shareCreate(); // an existing link follows the choice at once
});
copy.addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(link.value);
    status.textContent = "Link copied.";
  } catch {
    link.select();
    status.textContent = "Copy failed: the link is selected, copy it by hand.";
  }
});
stop.addEventListener("click", async () => {
  const response = await request("DELETE");
  if (response.ok || response.status === 404) {
    show(null);
    sharedTell(false);
    loginOnly.checked = false;
    status.textContent = "Sharing stopped: the link no longer works.";
    create.focus();
  }
});
document.getElementById("share-close").addEventListener("click", () => dialog.close());
dialog.addEventListener("close", () => {
  if (returnFocus && returnFocus.isConnected) returnFocus.focus();
});

/** Open the dialog for conversation `id`, giving the focus back to `from` when it closes. `shared`
 * (from the list) spares asking for a link a chat does not have, a 404 in the console; unknown, it asks. */
export async function open(id, from, shared = undefined) {
  sessionId = id;
  returnFocus = from;
  status.textContent = "";
  loginOnly.checked = false;
  show(null);
  dialog.showModal();
  if (shared === false) return;
  const response = await request("GET");
  if (sessionId === id && response.ok) show(await response.json());
}
