// What can be done to the reply and to shown messages: Stop (its button, or Escape), and each message's
// Copy, Edit, Regenerate and ‹ › version switch, with one listener for the whole thread (messages.js
// draws the buttons, each with a data-action attribute).

import { copyText } from "../messages.js";
import { busy, state } from "./state.js";
import { socketOpen, transmit } from "./socket.js";
import { inputFocus, replyRequest } from "./composer.js";

const list = document.getElementById("messages");
const stopButton = document.getElementById("stop");
const announcer = document.getElementById("announcer");

// Escape stops the reply from anywhere but a field or dialog of its own (an edit, the title, the search,
// the shortcut list); Shift+Escape is another shortcut's (shortcuts.js).
document.addEventListener("keydown", (event) => {
  const own = event.target.closest && event.target.closest(".editor, #chat-title, #sidebar, dialog");
  if (event.key === "Escape" && !event.shiftKey && state.live && !own) transmit({ type: "stop" });
});
stopButton.addEventListener("click", () => {
  transmit({ type: "stop" });
  inputFocus();
});

// --- message actions ---

/** Copy the text of the newest reply shown that has text, as written (its Markdown); say so aloud too. */
export async function lastReplyCopy() {
  const replies = Array.from(list.querySelectorAll(".message.assistant[data-message-id]")).reverse();
  const text = replies
    .map((root) => state.shown.get(Number(root.dataset.messageId))?.message.content || "")
    .find(Boolean);
  if (!text) {
    announcer.textContent = "No reply to copy yet";
    return;
  }
  try {
    await navigator.clipboard.writeText(text);
    announcer.textContent = "Copied the last reply";
  } catch {
    announcer.textContent = "Copy failed";
  }
}

function editorOpen(root, message) {
  if (root.querySelector(".editor")) return;
  const editor = document.createElement("form");
  editor.className = "editor";
  const area = document.createElement("textarea");
  area.value = message.content;
  area.setAttribute("aria-label", "Edit your message");
  area.rows = Math.min(12, message.content.split("\n").length + 1);
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = "Send";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "quiet-button";
  cancel.textContent = "Cancel";
  editor.append(area, save, cancel);
  root.classList.add("editing");
  root.querySelector(".content").after(editor);
  const close = () => {
    editor.remove();
    root.classList.remove("editing");
  };
  cancel.addEventListener("click", () => {
    close();
    root.querySelector("[data-action=edit]")?.focus();
  });
  editor.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!area.value.trim()) return;
    // Open until the server takes it (then the thread shows the new version), editable again if refused.
    const reopen = () => {
      area.disabled = save.disabled = false;
      area.focus();
    };
    if (replyRequest({ type: "edit", message_id: message.id, message: area.value }, { editor: { close, reopen } })) {
      area.disabled = save.disabled = true;
    }
  });
  area.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      editor.requestSubmit();
    } else if (event.key === "Escape") {
      cancel.click();
    }
  });
  area.focus();
}

/** Send a reply's feedback (1 good, -1 bad, 0 takes it back): every tab's thumbs follow the server's
`feedback` frame (thread.js), this one's included. */
function feedbackSend(message, value, comment = "") {
  if (!socketOpen()) {
    announcer.textContent = "Not connected: the feedback was not sent.";
    return false;
  }
  transmit({ type: "feedback", message_id: message.id, value, comment });
  announcer.textContent = value ? "Thanks for the feedback." : "Feedback removed.";
  return true;
}

/** After a thumb: an optional comment, sent with the same rating. */
function feedbackCommentOpen(root, message, value) {
  root.querySelector(".feedback-form")?.remove();
  const form = document.createElement("form");
  form.className = "feedback-form";
  const field = document.createElement("input");
  field.type = "text";
  field.maxLength = 2000;
  field.placeholder = value === -1 ? "What was wrong? (optional)" : "What was good? (optional)";
  field.setAttribute("aria-label", "Feedback comment");
  field.value = (message.feedback && message.feedback.comment) || "";
  const send = document.createElement("button");
  send.type = "submit";
  send.textContent = "Send";
  form.append(field, send);
  root.querySelector(".message-actions").after(form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (feedbackSend(message, value, field.value)) form.remove();
  });
  field.addEventListener("keydown", (event) => {
    if (event.key === "Escape") form.remove();
  });
  field.focus();
}

list.addEventListener("click", (event) => {
  const action = event.target.closest("button");
  if (!action || !list.contains(action)) return;
  if (action.classList.contains("copy-code")) {
    copyText(action.closest(".code-block").querySelector("code").textContent, action);
    return;
  }
  const root = action.closest("[data-message-id]");
  const entry = root && state.shown.get(Number(root.dataset.messageId));
  if (!entry) return;
  const { message } = entry;
  const siblings = message.siblings || [];
  switch (action.dataset.action) {
    case "copy-message":
      copyText(message.content, action);
      break;
    case "regenerate":
      replyRequest({ type: "regenerate", message_id: message.id });
      break;
    case "edit":
      if (!busy()) editorOpen(root, message);
      break;
    case "feedback-up":
    case "feedback-down": {
      const value = action.dataset.action === "feedback-up" ? 1 : -1;
      const taken = message.feedback && message.feedback.value === value;
      if (feedbackSend(message, taken ? 0 : value) && !taken) feedbackCommentOpen(root, message, value);
      else root.querySelector(".feedback-form")?.remove();
      break;
    }
    case "branch-prev":
    case "branch-next": {
      if (busy()) break;
      const step = action.dataset.action === "branch-next" ? 1 : -1;
      const target = siblings[siblings.indexOf(message.id) + step];
      if (target) {
        // The new version takes this one's place on screen: the thread must not jump away from it.
        state.anchor = { id: target, top: root.getBoundingClientRect().top };
        transmit({ type: "switch", message_id: target });
      }
      break;
    }
  }
});
