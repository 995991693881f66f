// The sidebar and the conversation's own actions: the owner's conversations (searchable, paged), opening
// one without a page load, new chat, rename, delete, export links, and the drawer on narrow screens.
// Titles reach the DOM as text only.
"use strict";

(() => {
  const app = window.chatApp;
  const sidebar = document.getElementById("sidebar");
  const list = document.getElementById("conversation-list");
  const search = document.getElementById("conversation-search");
  const more = document.getElementById("conversations-more");
  const empty = document.getElementById("conversations-empty");
  const backdrop = document.getElementById("drawer-backdrop");
  const openButton = document.getElementById("sidebar-open");
  const title = document.getElementById("chat-title");
  const renameButton = document.getElementById("rename-chat");
  let searchTimer = null;
  let offset = 0;
  let generation = 0; // answers to an older search or refresh are dropped


  function chatPath(id, suffix = "") {
    return `/c/${encodeURIComponent(id)}/${suffix}`;
  }

  const DAY = 24 * 60 * 60 * 1000;

  /** Which group a conversation last active at `iso` falls in, by the browser's calendar days. */
  function groupOf(iso) {
    const midnight = new Date();
    midnight.setHours(0, 0, 0, 0);
    const when = new Date(iso).getTime();
    if (when >= midnight.getTime()) return "Today";
    if (when >= midnight.getTime() - DAY) return "Yesterday";
    if (when >= midnight.getTime() - 7 * DAY) return "Previous 7 days";
    return "Older";
  }

  /** The list's entries with a heading before each group (the list is newest first). */
  function grouped(conversations, after) {
    let current = after;
    const entries = [];
    for (const conversation of conversations) {
      const group = conversation.updated_at ? groupOf(conversation.updated_at) : current;
      if (group && group !== current) {
        const heading = document.createElement("li");
        heading.className = "group-heading";
        heading.textContent = group;
        entries.push(heading);
        current = group;
      }
      const entry = item(conversation);
      entry.dataset.group = current || "";
      entries.push(entry);
    }
    return entries;
  }

  function item(conversation) {
    const entry = document.createElement("li");
    const link = document.createElement("a");
    link.href = chatPath(conversation.session_id);
    link.dataset.sessionId = conversation.session_id;
    link.textContent = conversation.title;
    link.title = conversation.title;
    if (conversation.session_id === app.sessionId) link.setAttribute("aria-current", "page");
    entry.appendChild(link);
    return entry;
  }

  /** Load the first page (append=false) or the next one of the list, for the current search. */
  async function load(append = false) {
    const mine = ++generation;
    const query = search.value.trim();
    const from = append ? offset : 0;
    const response = await fetch(`/api/conversations/?q=${encodeURIComponent(query)}&offset=${from}`, {
      credentials: "same-origin",
    });
    if (!response.ok || mine !== generation) return;
    const page = await response.json();
    if (mine !== generation) return; // a newer search or refresh started meanwhile
    const shown = list.querySelectorAll("li[data-group]");
    const last = append && shown.length ? shown[shown.length - 1] : null;
    const items = grouped(page.conversations, last ? last.dataset.group : null);
    if (append) list.append(...items);
    else list.replaceChildren(...items);
    offset = from + page.conversations.length;
    more.hidden = !page.has_more;
    empty.hidden = list.querySelector("a") !== null || !query;
  }

  function currentMark() {
    for (const link of list.querySelectorAll("a")) {
      if (link.dataset.sessionId === app.sessionId) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  // --- the drawer (narrow screens) ---

  function drawerSet(open) {
    sidebar.classList.toggle("open", open);
    backdrop.hidden = !open;
    openButton.setAttribute("aria-expanded", String(open));
    // Focus the drawer's own close button, not the search box: a phone would pop up its keyboard.
    if (open) document.getElementById("sidebar-close").focus();
  }
  openButton.addEventListener("click", () => drawerSet(true));
  document.getElementById("sidebar-close").addEventListener("click", () => {
    drawerSet(false);
    openButton.focus();
  });
  backdrop.addEventListener("click", () => drawerSet(false));
  sidebar.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && sidebar.classList.contains("open")) {
      drawerSet(false);
      openButton.focus();
    }
  });

  // --- opening conversations in place ---

  function plainClick(event) {
    return event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;
  }

  list.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-session-id]");
    if (!link || !plainClick(event)) return; // a new tab or window still works as a link
    event.preventDefault();
    drawerSet(false);
    app.open(link.dataset.sessionId);
  });
  for (const link of [document.getElementById("new-chat"), document.querySelector(".brand")]) {
    link.addEventListener("click", (event) => {
      if (!plainClick(event)) return;
      event.preventDefault();
      drawerSet(false);
      app.openNew();
    });
  }

  document.addEventListener("chat:opened", () => {
    const id = app.sessionId;
    document.getElementById("export-md").href = chatPath(id, "export.md");
    document.getElementById("export-json").href = chatPath(id, "export.json");
    const login = document.querySelector('.account a[href^="/accounts/login/"]');
    if (login) login.href = `/accounts/login/?next=${encodeURIComponent(chatPath(id))}`;
    currentMark();
  });

  // --- rename, delete ---

  async function post(id, action, body) {
    return fetch(chatPath(id, action), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": app.csrfToken() },
      body,
    });
  }

  function renameStart() {
    if (title.querySelector("input")) return;
    const id = app.sessionId; // the chat being renamed, even if another is open when the answer comes
    const before = title.textContent;
    const field = document.createElement("input");
    field.type = "text";
    field.value = before;
    field.maxLength = 200;
    field.setAttribute("aria-label", "Chat title");
    title.replaceChildren(field);
    field.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const wanted = field.value.trim();
      title.textContent = before;
      if (save && wanted && wanted !== before) {
        const form = new FormData();
        form.append("title", wanted);
        const response = await post(id, "rename", form);
        if (response.ok) {
          document.dispatchEvent(new CustomEvent("chat:renamed", { detail: { sessionId: id, title: wanted } }));
          load();
        } else {
          alert("This chat could not be renamed: send a message first.");
        }
      }
      renameButton.focus();
    };
    field.addEventListener("keydown", (event) => {
      if (event.key === "Enter") finish(true);
      else if (event.key === "Escape") finish(false);
    });
    field.addEventListener("blur", () => finish(true));
  }
  renameButton.addEventListener("click", renameStart);

  document.getElementById("delete-chat").addEventListener("click", async () => {
    if (!confirm("Delete this chat and all its messages?")) return;
    const id = app.sessionId;
    const response = await post(id, "delete");
    if (response.ok || response.status === 404) {
      if (app.sessionId === id) app.openNew(); // unless another chat was opened meanwhile
      load();
    } else {
      alert((await response.json()).message || "This chat could not be deleted.");
    }
  });

  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => load(), 200);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      clearTimeout(searchTimer);
      load();
    }
  });
  more.addEventListener("click", () => load(true));
  // A new chat appears with its first message, titled, and a conversation moves up with every turn.
  document.addEventListener("chat:reply-started", () => load());
  // A title the model wrote (or another tab's rename) renames the chat's entry in place.
  document.addEventListener("chat:titled", (event) => {
    for (const link of list.querySelectorAll("a[data-session-id]")) {
      if (link.dataset.sessionId === event.detail.sessionId) link.textContent = link.title = event.detail.title;
    }
  });
  load();
})();
