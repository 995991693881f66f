// The sidebar and the conversation's own actions: the owner's conversations (searchable, paged, pinned
// ones first, the page's or the API's: conversation-source.js), opening one without a page load, new chat, the drawer on narrow screens, and each chat's
// "⋯" menu (chat-menu.js), on its sidebar entry and on the open chat's title bar: rename, pin, share
// (share-dialog.js), export, delete. Titles reach the DOM as text only.

import * as chatMenu from "./chat-menu.js";
import { listedSource, onSourcePicked, sourceShow } from "./conversation-source.js";
import { csrfToken } from "./csrf.js";
import { conversationOpen, newConversationOpen } from "./navigation.js";
import * as shareDialog from "./share-dialog.js";
import { state } from "./state.js";

const sidebar = document.getElementById("sidebar");
const list = document.getElementById("conversation-list");
const search = document.getElementById("conversation-search");
const more = document.getElementById("conversations-more");
const empty = document.getElementById("conversations-empty");
const backdrop = document.getElementById("drawer-backdrop");
const openButton = document.getElementById("sidebar-open");
const title = document.getElementById("chat-title");
const menuButton = document.getElementById("chat-menu-button");
let searchTimer = null;
let offset = 0;
let generation = 0; // answers to an older search or refresh are dropped
const pinned = new Map(); // session id → pinned, for the chats listed
const shared = new Map(); // session id → whether it has a share link, for the chats listed
// What the share dialog did, by when (`moment`): a list asked for before it must not undo it.
const sharedNews = new Map(); // session id → { shared, at }
let moment = 0; // orders the list's loads and the dialog's news

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
function grouped(conversations, after, asked) {
  let current = after;
  const entries = [];
  for (const conversation of conversations) {
    const group = conversation.pinned ? "Pinned" : groupOf(conversation.updated_at);
    if (group && group !== current) {
      const heading = document.createElement("li");
      heading.className = "group-heading";
      heading.textContent = group;
      entries.push(heading);
      current = group;
    }
    const entry = item(conversation, asked);
    entry.dataset.group = current || "";
    entries.push(entry);
  }
  return entries;
}

function item(conversation, asked) {
  const id = conversation.session_id;
  pinned.set(id, Boolean(conversation.pinned));
  const news = sharedNews.get(id);
  shared.set(id, news && news.at > asked ? news.shared : Boolean(conversation.shared));
  const entry = document.createElement("li");
  entry.className = "conversation-entry";
  const link = document.createElement("a");
  link.href = chatPath(id);
  link.dataset.sessionId = id;
  link.textContent = conversation.title;
  link.title = conversation.title;
  if (id === state.sessionId) link.setAttribute("aria-current", "page");
  const menu = chatMenu.button(`Actions for ${conversation.title}`, () =>
    menuItems(id, { rename: () => renameStart(id, entryRenamePlace(entry, link), menu) }),
  );
  entry.append(link, menu);
  return entry;
}

async function page(query, from, source) {
  const params = new URLSearchParams({ q: query, offset: from });
  if (source) params.set("source", source);
  const response = await fetch(`/api/conversations/?${params}`, { credentials: "same-origin" });
  return response.ok ? response.json() : null;
}

/**
 * Load the next page of the list (append), or the list afresh, as far as it was shown: after a reply, a
 * rename or a pin, "Show more" keeps what it loaded (page by page up to the same length).
 */
async function load(append = false) {
  const mine = ++generation;
  const asked = ++moment;
  const query = search.value.trim();
  const source = listedSource();
  const from = append ? offset : 0;
  const wanted = append ? 1 : Math.max(1, offset);
  const conversations = [];
  let answer = null;
  do {
    answer = await page(query, from + conversations.length, source);
    if (!answer || mine !== generation) return; // a newer search or refresh started meanwhile
    conversations.push(...answer.conversations);
  } while (answer.has_more && conversations.length < wanted);
  const shown = list.querySelectorAll("li[data-group]");
  const last = append && shown.length ? shown[shown.length - 1] : null;
  const items = grouped(conversations, last ? last.dataset.group : null, asked);
  if (append) list.append(...items);
  else list.replaceChildren(...items);
  offset = from + conversations.length;
  more.hidden = !answer.has_more;
  const none = list.querySelector("a") === null;
  empty.textContent = query ? "No chats found." : "No API conversations.";
  empty.hidden = !none || !(query || source === "api");
}

/** Whether the open conversation has an entry in the list as shown. */
function openListed() {
  return [...list.querySelectorAll("a[data-session-id]")].some((link) => link.dataset.sessionId === state.sessionId);
}

/**
 * The list follows the chat being written in: a reply in a conversation the filter leaves out (a new
 * chat while API conversations are shown, an API conversation continued while chats are) shows the other
 * source, said aloud.
 */
async function followOpen() {
  const source = listedSource();
  await load();
  if (!source || source !== listedSource() || openListed() || search.value.trim()) return;
  const other = source === "api" ? "page" : "api";
  sourceShow(other);
  document.getElementById("announcer").textContent =
    other === "api" ? "Showing API conversations." : "Showing chats.";
  await load();
}

function placeholderSet(source) {
  search.placeholder = source === "api" ? "Search API conversations" : "Search chats";
}

/** A fresh search starts from its first page; a refresh keeps the list's length. */
function searchLoad() {
  offset = 0;
  load();
}

function currentMark() {
  for (const link of list.querySelectorAll("a")) {
    if (link.dataset.sessionId === state.sessionId) link.setAttribute("aria-current", "page");
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
  conversationOpen(link.dataset.sessionId);
});
for (const link of [document.getElementById("new-chat"), document.querySelector(".brand")]) {
  link.addEventListener("click", (event) => {
    if (!plainClick(event)) return;
    event.preventDefault();
    drawerSet(false);
    newConversationOpen();
  });
}

document.addEventListener("chat:opened", () => {
  const id = state.sessionId;
  menuButton.hidden = true; // until its history says it is stored: a new chat has nothing to act on
  const login = document.querySelector('.account a[href^="/accounts/login/"]');
  if (login) login.href = `/accounts/login/?next=${encodeURIComponent(chatPath(id))}`;
  currentMark();
});

// --- each chat's menu: rename, pin, share, export, delete ---

async function post(id, action, body, headers = {}) {
  return fetch(chatPath(id, action), {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken(), ...headers },
    body,
  });
}

/** The menu's items for conversation `id` (`rename` edits its title where the menu was opened). */
function menuItems(id, { rename }) {
  const isPinned = pinned.get(id) === true;
  return [
    { id: "rename", label: "Rename", action: rename },
    { id: "pin", label: isPinned ? "Unpin" : "Pin", action: () => pinSet(id, !isPinned) },
    { id: "share", label: "Share…", action: () => shareDialog.open(id, document.activeElement, shared.get(id)) },
    { id: "export-md", label: "Export Markdown", href: chatPath(id, "export.md"), download: true },
    { id: "export-json", label: "Export JSON", href: chatPath(id, "export.json"), download: true },
    { id: "delete", label: "Delete", danger: true, action: () => conversationDelete(id) },
  ];
}

menuButton.addEventListener("click", () => {
  const id = state.sessionId;
  chatMenu.open(menuButton, menuItems(id, { rename: () => renameStart(id, titleRenamePlace(), menuButton) }), {
    label: "Chat actions",
  });
});
document.addEventListener("chat:shared", (event) => {
  // The dialog made or revoked its link; a list answer already on its way still says otherwise.
  const { sessionId, shared: has } = event.detail;
  shared.set(sessionId, has);
  sharedNews.set(sessionId, { shared: has, at: ++moment });
});
document.addEventListener("chat:history", (event) => {
  if (event.detail.sessionId === state.sessionId) menuButton.hidden = !event.detail.stored;
});
document.addEventListener("chat:reply-started", () => {
  menuButton.hidden = false; // its first message stored it
});

/** Where the title bar's rename edits: the title itself; returns how to put the title back. */
function titleRenamePlace() {
  const before = title.textContent;
  return {
    before,
    put(field) {
      title.replaceChildren(field);
      return () => {
        title.textContent = before;
      };
    },
  };
}

/** Where a sidebar entry's rename edits: in place of its link. */
function entryRenamePlace(entry, link) {
  return {
    before: link.textContent,
    put(field) {
      link.hidden = true;
      entry.insertBefore(field, link);
      return () => {
        field.remove();
        link.hidden = false;
      };
    },
  };
}

function renameStart(id, place, returnFocus) {
  if (document.querySelector(".title-field")) return;
  const field = document.createElement("input");
  field.type = "text";
  field.className = "title-field";
  field.value = place.before;
  field.maxLength = 200;
  field.setAttribute("aria-label", "Chat title");
  const restore = place.put(field);
  field.focus();
  field.select();
  let done = false;
  const finish = async (save, refocus = true) => {
    if (done) return;
    done = true;
    const wanted = field.value.trim();
    restore();
    if (refocus) returnFocus.focus(); // not after a click elsewhere: the focus went where it was sent
    if (save && wanted && wanted !== place.before) {
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
  };
  field.addEventListener("keydown", (event) => {
    event.stopPropagation(); // Escape cancels the edit only (not the drawer, not the reply)
    if (event.key !== "Enter" && event.key !== "Escape") return;
    // The key ends here: the focus goes back to the menu's button, which would take this Enter as a
    // click and open its menu again (the next click then closed it: two clicks to open it).
    event.preventDefault();
    finish(event.key === "Enter");
  });
  field.addEventListener("blur", () => finish(true, false));
}

async function pinSet(id, wanted) {
  const response = await post(id, "pin", JSON.stringify({ pinned: wanted }), { "Content-Type": "application/json" });
  if (response.ok) {
    pinned.set(id, wanted);
    document.getElementById("announcer").textContent = wanted ? "Chat pinned." : "Chat unpinned.";
    load();
  }
}

async function conversationDelete(id) {
  if (!confirm("Delete this chat and all its messages?")) return;
  const response = await post(id, "delete");
  if (response.ok || response.status === 404) {
    if (state.sessionId === id) newConversationOpen(); // the open chat: a new one takes its place
    load();
  } else {
    alert((await response.json()).message || "This chat could not be deleted.");
  }
}

search.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(searchLoad, 200);
});
search.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    clearTimeout(searchTimer);
    searchLoad();
  }
});
more.addEventListener("click", () => load(true));
onSourcePicked((source) => {
  placeholderSet(source);
  searchLoad();
});
// A new chat appears with its first message, titled, and a conversation moves up with every turn.
document.addEventListener("chat:reply-started", () => followOpen());
// A title the model wrote (or another tab's rename) renames the chat's entry in place.
document.addEventListener("chat:titled", (event) => {
  for (const link of list.querySelectorAll("a[data-session-id]")) {
    if (link.dataset.sessionId === event.detail.sessionId) link.textContent = link.title = event.detail.title;
  }
});
placeholderSet(listedSource());
load();
