// The chat page: one WebSocket per tab on the open conversation, speaking the history / history_page /
// start / chunk / tool / done / error protocol. Conversations switch without a page load (pushState).
"use strict";

window.chatApp = (() => {
  const { messageView, endingShow, toolAdd } = window.ChatMessages;
  const chat = document.getElementById("chat");
  const list = document.getElementById("messages");
  const emptyNote = document.getElementById("empty-chat");
  const loadOlder = document.getElementById("load-older");
  const jumpLatest = document.getElementById("jump-latest");
  const title = document.getElementById("chat-title");
  const form = document.getElementById("composer");
  const input = document.getElementById("input");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const modelSelect = document.getElementById("model");
  const mcpInput = document.getElementById("mcp");
  const mcpError = document.getElementById("mcp-error");
  const presetBoxes = Array.from(document.querySelectorAll(".mcp-preset"));
  const connection = document.getElementById("connection");
  const announcer = document.getElementById("announcer");

  // Mirrors conversations/validators.py, so a typo is shown while typing; the server checks again.
  const MCP_SLUG_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(@[A-Za-z0-9_.-]{1,50})?$/;
  const SESSION_PATH_RE = /^\/c\/([A-Za-z0-9_-]{1,64})\/$/;
  // `done` reasons of a reply cut short: stopped by a user, by a shutdown, or by its server's death.
  const CUT_SHORT = new Set(["stopped", "interrupted", "server_lost"]);

  let sessionId = JSON.parse(document.getElementById("session-id").textContent);
  let socket = null;
  let retryDelay = 500;
  let retryTimer = null;
  // The stored messages shown, by id, each with its view (content as written: what Copy copies and Edit
  // starts from).
  let shown = new Map();
  // The reply being streamed: its id, view, renderer, full text, and the offset the next chunk starts at.
  let live = null;
  // A frame sent but not yet acknowledged by `start` (or `duplicate`): resent with the same client id
  // after a reconnect whose history does not hold it. The server drops a resend.
  let pending = null;
  let hasMore = false;
  let loadingOlder = false;
  // The first history after opening a conversation scrolls to its end; later ones keep the reader's place.
  let firstHistory = true;
  // Follow the stream to the bottom until the user scrolls up; then offer "jump to latest".
  let pinned = true;
  // Once the user changes the model or MCP controls, a later history frame must not undo their choice.
  let controlsTouched = false;

  // --- small helpers ---

  function newClientId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function newSessionId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function codePoints(text) {
    let n = 0;
    for (const _ of text) n++;
    return n;
  }

  function transmit(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  function setConnection(state, label) {
    connection.className = "connection " + state;
    connection.textContent = label;
  }

  function busy() {
    return live !== null || pending !== null;
  }

  function controlsRefresh() {
    const isBusy = busy();
    sendButton.disabled = isBusy;
    stopButton.hidden = live === null;
    chat.setAttribute("aria-busy", String(live !== null));
    for (const action of list.querySelectorAll("[data-action=regenerate], [data-action=edit], .branch-nav button")) {
      action.toggleAttribute("aria-disabled", isBusy);
    }
  }

  function titleShow(text) {
    title.textContent = text || "New chat";
    document.title = text ? `${text} · Dedalus Chat` : "Dedalus Chat";
  }

  // --- scrolling ---

  function nearBottom() {
    return chat.scrollHeight - chat.scrollTop - chat.clientHeight < 60;
  }

  function scrollFollow() {
    if (pinned) chat.scrollTop = chat.scrollHeight;
    jumpLatest.hidden = pinned || !list.lastElementChild;
  }

  chat.addEventListener("scroll", () => {
    pinned = nearBottom();
    jumpLatest.hidden = pinned;
    if (chat.scrollTop < 200) olderRequest();
  });
  jumpLatest.addEventListener("click", () => {
    pinned = true;
    scrollFollow();
    input.focus();
  });

  // --- the thread ---

  function messageAppend(message, before = null) {
    const view = messageView(message);
    shown.set(message.id, { message, view });
    list.insertBefore(view.root, before);
    emptyNote.hidden = true;
    return view;
  }

  function lastShownId() {
    const last = list.querySelector("article:last-of-type");
    return last ? Number(last.dataset.messageId) : null;
  }

  function systemLine(text) {
    const line = document.createElement("div");
    line.className = "system";
    line.setAttribute("role", "alert");
    line.textContent = text;
    list.appendChild(line);
    scrollFollow();
  }

  function liveStart(message, content, offset) {
    const view = messageAppend({ ...message, status: "streaming", content: "" });
    const renderer = new window.ChatMarkdown.StreamingRenderer(view.content);
    live = { messageId: message.id, view, renderer, text: content, offset, resyncing: false, frame: 0 };
    if (content) liveRender();
    controlsRefresh();
  }

  // Chunks can arrive hundreds of times a second: render at most once per frame.
  function liveRenderSoon() {
    if (live && !live.frame) live.frame = requestAnimationFrame(liveRender);
  }

  function liveRender() {
    if (!live) return;
    live.frame = 0;
    live.renderer.update(live.text);
    scrollFollow();
  }

  function liveFinish(frame, status, error) {
    const current = live && live.messageId === frame.message_id ? live : null;
    if (current && current.resyncing) {
      // The end overtook the text we asked for again: the stored reply is whole, so show that instead.
      transmit({ type: "history" });
      return;
    }
    if (current) {
      cancelAnimationFrame(current.frame);
      current.renderer.finish(current.text);
      live = null;
    }
    const stored = shown.get(frame.message_id);
    if (stored) {
      Object.assign(stored.message, { status, usage: frame.usage || null, error: error || "" });
      if (current) stored.message.content = current.text;
      endingShow(stored.view, stored.message);
    }
    controlsRefresh();
    scrollFollow();
  }

  // The message box grows with its text, up to 40% of the window.
  function inputFit() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight + 2, window.innerHeight * 0.4)}px`;
  }

  function pendingSettle() {
    if (pending !== null && pending.clearsInput && input.value === pending.frame.message) {
      input.value = "";
      inputFit();
    }
    if (pending !== null && pending.editor) pending.editor.close();
    pending = null;
    controlsRefresh();
  }

  /** The server refused the pending frame: nothing was stored, so the words stay where they were typed. */
  function pendingRefused() {
    if (pending !== null && pending.editor) pending.editor.reopen();
    pending = null;
    controlsRefresh();
  }

  // --- frames ---

  function onHistory(frame) {
    const readingAt = pinned || firstHistory ? null : chat.scrollTop;
    firstHistory = false;
    loadingOlder = false;
    if (live) cancelAnimationFrame(live.frame);
    live = null;
    shown = new Map();
    list.replaceChildren();
    const conversation = frame.conversation;
    titleShow(conversation.title);
    if (!controlsTouched) controlsFromConversation(conversation);
    const streaming = frame.streaming;
    for (const message of frame.messages) {
      if (streaming && message.id === streaming.message_id) continue;
      messageAppend(message);
    }
    if (streaming) {
      const message = frame.messages.find((m) => m.id === streaming.message_id) || { id: streaming.message_id };
      liveStart({ role: "assistant", ...message }, streaming.content, streaming.offset);
    }
    hasMore = Boolean(frame.has_more);
    loadOlder.hidden = !hasMore;
    emptyNote.hidden = frame.messages.length > 0;
    if (pending !== null) {
      if (frame.messages.some((m) => m.client_id === pending.clientId)) pendingSettle();
      else transmit(pending.frame); // lost with the old socket: send again, the same client id
    }
    controlsRefresh();
    pinned = readingAt === null;
    if (readingAt !== null) chat.scrollTop = readingAt; // another tab's branch change: stay where you read
    scrollFollow();
    performance.mark("chat:history-shown");
  }

  function onHistoryPage(frame) {
    loadingOlder = false;
    const first = list.querySelector("[data-message-id]");
    if (!first || Number(first.dataset.messageId) !== frame.before) return; // a stale answer
    const heightBefore = chat.scrollHeight;
    for (const message of frame.messages) messageAppend(message, first);
    chat.scrollTop += chat.scrollHeight - heightBefore; // keep what the user was reading in place
    hasMore = Boolean(frame.has_more);
    loadOlder.hidden = !hasMore;
  }

  function olderRequest() {
    const first = list.querySelector("[data-message-id]");
    if (!hasMore || loadingOlder || !first) return;
    loadingOlder = true;
    transmit({ type: "history", before: Number(first.dataset.messageId) });
  }
  loadOlder.addEventListener("click", olderRequest);

  function onStart(frame) {
    if (pending !== null) {
      const acknowledged = frame.user_message
        ? frame.user_message.client_id === pending.clientId
        : pending.frame.type === "regenerate";
      if (acknowledged) pendingSettle();
    }
    // Every turn is stored before its start (title set, conversation moved up): the sidebar follows.
    document.dispatchEvent(new CustomEvent("chat:reply-started", { detail: { sessionId } }));
    if (live && live.messageId === frame.message_id) return; // a history frame already showed it
    // A reply on another branch (an edit, a regenerate, another tab's switch) replaces part of the
    // thread: ask for the whole new branch rather than guess it here.
    const anchor = frame.user_message ? frame.user_message.parent_id : frame.parent_id;
    if (anchor !== undefined && (anchor ?? null) !== lastShownId()) {
      transmit({ type: "history" });
      return;
    }
    if (frame.user_message) {
      messageAppend(frame.user_message);
      if (!title.dataset.renamed && title.textContent === "New chat") {
        titleShow(frame.user_message.content.split(/\s+/).join(" ").trim().slice(0, 60));
      }
    }
    liveStart({ id: frame.message_id, role: "assistant", model: frame.model, created_at: new Date().toISOString() }, "", 0);
    scrollFollow(); // follows if the user had not scrolled up (a send of ours pinned the view already)
  }

  function onChunk(frame) {
    if (!live || live.messageId !== frame.message_id) return;
    const end = frame.offset + codePoints(frame.content);
    if (end <= live.offset) return; // all of it is already shown
    if (frame.offset > live.offset) {
      // A gap: ask once for the text from where ours ends; chunks past the gap wait for it.
      if (!live.resyncing) {
        live.resyncing = true;
        transmit({ type: "resync", message_id: live.messageId, offset: live.offset });
      }
      return;
    }
    let content = frame.content;
    if (frame.offset < live.offset) {
      content = Array.from(content).slice(live.offset - frame.offset).join(""); // keep only what is new
    }
    live.text += content;
    live.offset = end;
    live.resyncing = false;
    liveRenderSoon();
  }

  function onError(frame) {
    if (frame.message_id) {
      liveFinish(frame, "error", frame.message);
      return;
    }
    if (frame.code === "unavailable" && pending !== null) {
      socket.close(); // this server is going away: reconnect (maybe to another) and resend
      return;
    }
    if (frame.code === "invalid_message" && loadingOlder) {
      loadingOlder = false; // the page asked for no longer exists (a branch switch): nothing to show
      return;
    }
    systemLine(`Error: ${frame.message}`);
    pendingRefused();
  }

  function onFrame(event) {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    switch (frame.type) {
      case "history":
        onHistory(frame);
        break;
      case "history_page":
        onHistoryPage(frame);
        break;
      case "start":
        onStart(frame);
        break;
      case "chunk":
        onChunk(frame);
        break;
      case "duplicate":
        if (pending !== null && frame.client_id === pending.clientId) pendingSettle();
        break;
      case "tool":
        if (live && live.messageId === frame.message_id) {
          toolAdd(live.view.tools, frame);
          scrollFollow();
        }
        break;
      case "done":
        liveFinish(frame, CUT_SHORT.has(frame.finish_reason) ? "interrupted" : "complete");
        if (!document.activeElement || document.activeElement === document.body) input.focus();
        break;
      case "error":
        onError(frame);
        break;
    }
  }

  // --- the socket ---

  function connect() {
    clearTimeout(retryTimer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    setConnection("connecting", "connecting…");
    const current = new WebSocket(`${scheme}://${location.host}/ws/chat/${encodeURIComponent(sessionId)}/`);
    socket = current;
    current.onopen = () => {
      retryDelay = 500;
      setConnection("open", "connected");
    };
    current.onmessage = (event) => {
      if (socket === current) onFrame(event);
    };
    current.onclose = (event) => {
      if (socket !== current) return; // an older socket, already replaced
      if (event.code === 4401) {
        // No session (logged out elsewhere, expired) or a login is required: the page itself gets a fresh
        // session or sends us to the login page. At most once in a while, so a browser that keeps no
        // cookie does not reload forever.
        if (!reloadedRecently()) location.reload();
        else setConnection("closed", "signed out: this page needs cookies; reload to retry");
        return;
      }
      if (event.code === 4429) retryDelay = Math.max(retryDelay, 15000); // too many tabs: retry slowly
      reconnectLater(event.code === 4429 ? "too many open chats: close a tab" : "reconnecting…");
    };
  }

  function reloadedRecently() {
    try {
      const last = Number(sessionStorage.getItem("chat-reloaded-at") || 0);
      sessionStorage.setItem("chat-reloaded-at", String(Date.now()));
      return Date.now() - last < 10000;
    } catch {
      return true; // no storage either: do not risk a reload loop
    }
  }

  function reconnectLater(label) {
    setConnection("closed", label);
    clearTimeout(retryTimer);
    // Backoff with jitter, so a restarted server is not hit by every tab at once.
    retryTimer = setTimeout(connect, retryDelay * (0.5 + Math.random() / 2));
    retryDelay = Math.min(retryDelay * 2, 10000);
  }

  // The browser knows the network went away before TCP does: drop the socket now (without waiting for a
  // closing handshake that cannot get through), and come back as soon as the network does. The reply
  // goes on on the server; the next history frame resumes it.
  window.addEventListener("offline", () => {
    if (!socket) return;
    const dead = socket;
    socket = null;
    dead.close();
    reconnectLater("reconnecting…");
  });
  window.addEventListener("online", () => {
    retryDelay = 500;
    if (!socket || socket.readyState === WebSocket.CLOSED || socket.readyState === WebSocket.CLOSING) connect();
  });

  /** Show another conversation in this tab: a new socket, its history, the URL kept in step. */
  function open(id, { push = true } = {}) {
    if (id === sessionId && socket) return;
    const old = socket;
    socket = null;
    if (old) old.close();
    sessionId = id;
    if (live) cancelAnimationFrame(live.frame);
    live = null;
    pendingSettle(); // a frame already sent is the old conversation's now: its text leaves the box
    controlsTouched = false;
    firstHistory = true;
    loadingOlder = false;
    shown = new Map();
    list.replaceChildren();
    hasMore = false;
    loadOlder.hidden = true;
    emptyNote.hidden = false;
    delete title.dataset.renamed;
    titleShow("");
    controlsRefresh();
    if (push) history.pushState({ sessionId: id }, "", `/c/${encodeURIComponent(id)}/`);
    document.dispatchEvent(new CustomEvent("chat:opened", { detail: { sessionId: id } }));
    connect();
    input.focus();
  }

  window.addEventListener("popstate", () => {
    const match = location.pathname.match(SESSION_PATH_RE);
    if (match) open(match[1], { push: false });
  });

  // --- the controls ---

  function controlsFromConversation(conversation) {
    if (conversation.model && Array.from(modelSelect.options).some((o) => o.value === conversation.model)) {
      modelSelect.value = conversation.model;
    }
    const servers = new Set(conversation.mcp_servers || []);
    for (const box of presetBoxes) box.checked = servers.has(box.value);
    mcpInput.value = [...servers].filter((s) => !presetBoxes.some((b) => b.value === s)).join(", ");
    mcpValidate();
  }

  function mcpTargetError(target) {
    if (MCP_SLUG_RE.test(target)) return "";
    let url;
    try {
      url = new URL(target);
    } catch {
      return `“${target}” is neither org/name nor an https:// URL`;
    }
    if (url.protocol !== "https:") return `“${target}”: only https:// URLs`;
    if (url.username || url.password) return `“${target}”: no credentials in the URL`;
    return "";
  }

  function typedServers() {
    return mcpInput.value.split(/[\s,]+/).filter(Boolean);
  }

  function mcpValidate() {
    const error = typedServers().map(mcpTargetError).find(Boolean) || "";
    mcpError.textContent = error;
    mcpInput.setAttribute("aria-invalid", String(Boolean(error)));
    return !error;
  }

  function selectedServers() {
    const picked = presetBoxes.filter((box) => box.checked).map((box) => box.value);
    return [...new Set([...picked, ...typedServers()])];
  }

  function canSend() {
    if (!socket || socket.readyState !== WebSocket.OPEN || busy()) return false;
    if (!mcpValidate()) {
      mcpInput.focus();
      return false;
    }
    return true;
  }

  /** Send a frame that starts a reply (message, edit or regenerate), resent until acknowledged. */
  function replyRequest(frame, { clearsInput = false, editor = null } = {}) {
    if (!canSend()) return false;
    const clientId = newClientId();
    pending = {
      clientId,
      clearsInput,
      editor,
      frame: { ...frame, model: modelSelect.value, mcp_servers: selectedServers(), client_id: clientId },
    };
    pinned = true;
    controlsRefresh();
    transmit(pending.frame);
    return true;
  }

  function send() {
    const text = input.value;
    if (!text.trim()) return;
    if (replyRequest({ message: text }, { clearsInput: true })) input.focus(); // Send is disabled now
  }

  for (const control of [modelSelect, mcpInput, ...presetBoxes]) {
    control.addEventListener("input", () => {
      controlsTouched = true;
      if (control === mcpInput) mcpValidate();
    });
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  // Escape stops the reply from anywhere but a field of its own (an edit, the title, the search).
  document.addEventListener("keydown", (event) => {
    const own = event.target.closest && event.target.closest(".editor, #chat-title, #sidebar");
    if (event.key === "Escape" && live && !own) transmit({ type: "stop" });
  });
  input.addEventListener("input", inputFit);
  stopButton.addEventListener("click", () => {
    transmit({ type: "stop" });
    input.focus();
  });

  // --- message actions (one listener for the whole thread) ---

  async function copyText(text, button) {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    announcer.textContent = button.textContent; // the button's aria-label would hide the change
    setTimeout(() => {
      button.textContent = "Copy";
    }, 1500);
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

  list.addEventListener("click", (event) => {
    const action = event.target.closest("button");
    if (!action || !list.contains(action)) return;
    if (action.classList.contains("copy-code")) {
      copyText(action.closest(".code-block").querySelector("code").textContent, action);
      return;
    }
    const root = action.closest("[data-message-id]");
    const entry = root && shown.get(Number(root.dataset.messageId));
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
      case "branch-prev":
      case "branch-next": {
        if (busy()) break;
        const step = action.dataset.action === "branch-next" ? 1 : -1;
        const target = siblings[siblings.indexOf(message.id) + step];
        if (target) transmit({ type: "switch", message_id: target });
        break;
      }
    }
  });

  document.addEventListener("chat:renamed", (event) => {
    if (event.detail.sessionId !== sessionId) return;
    title.dataset.renamed = "1";
    titleShow(event.detail.title);
  });

  connect();
  return {
    open,
    openNew: () => open(newSessionId()),
    get sessionId() {
      return sessionId;
    },
  };
})();
