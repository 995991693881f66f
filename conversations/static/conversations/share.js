// The shared page: a conversation's snapshot drawn by the chat's own message views (messages.js, with
// markdown.js's Markdown and sanitising), read-only: each message offers Copy, and code blocks their copy
// button. The snapshot comes from the page's json_script, never from inline script.

import { copyText, messageView } from "./messages.js";

const list = document.getElementById("messages");
const messages = JSON.parse(document.getElementById("shared-messages").textContent);
const byId = new Map();
for (const message of messages) {
  const view = messageView(message, { readOnly: true });
  byId.set(message.id, message);
  list.appendChild(view.root);
}
document.getElementById("empty-chat").hidden = messages.length > 0;

list.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  if (button.classList.contains("copy-code")) {
    copyText(button.closest(".code-block").querySelector("code").textContent, button);
  } else if (button.dataset.action === "copy-message") {
    const message = byId.get(Number(button.closest("[data-message-id]").dataset.messageId));
    if (message) copyText(message.content, button);
  }
});
