// The sidebar: the owner's conversations (searchable), and rename / delete of the open one.
// Titles reach the DOM as text only.
"use strict";

(() => {
  const sessionId = JSON.parse(document.getElementById("session-id").textContent);
  const list = document.getElementById("conversation-list");
  const search = document.getElementById("conversation-search");
  let searchTimer = null;

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function refresh() {
    const query = search.value.trim();
    const response = await fetch(`/api/conversations/?q=${encodeURIComponent(query)}`, { credentials: "same-origin" });
    if (!response.ok) return;
    const { conversations } = await response.json();
    list.replaceChildren(
      ...conversations.map((conversation) => {
        const item = document.createElement("li");
        const link = document.createElement("a");
        link.href = `/c/${encodeURIComponent(conversation.session_id)}/`;
        link.textContent = conversation.title;
        link.title = conversation.title;
        if (conversation.session_id === sessionId) link.setAttribute("aria-current", "page");
        item.appendChild(link);
        return item;
      }),
    );
  }

  async function post(action, body) {
    const response = await fetch(`/c/${encodeURIComponent(sessionId)}/${action}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken() },
      body,
    });
    return response;
  }

  document.getElementById("rename-chat").addEventListener("click", async () => {
    const title = prompt("New title for this chat:");
    if (!title || !title.trim()) return;
    const form = new FormData();
    form.append("title", title);
    await post("rename", form);
    refresh();
  });

  document.getElementById("delete-chat").addEventListener("click", async () => {
    if (!confirm("Delete this chat and all its messages?")) return;
    const response = await post("delete");
    if (response.ok) location.assign("/");
    else alert((await response.json()).message || "This chat could not be deleted.");
  });

  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(refresh, 200);
  });
  // Titles change when a first message is sent: refresh after every reply ends.
  document.addEventListener("chat:reply-ended", refresh);
  refresh();
})();
