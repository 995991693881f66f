// The chat page: one WebSocket per tab, speaking the history/start/chunk/tool/done/error protocol.
// User, model and tool text only ever reaches the DOM through textContent / text nodes.
"use strict";

(() => {
  const sessionId = JSON.parse(document.getElementById("session-id").textContent);
  const chat = document.getElementById("chat");
  const form = document.getElementById("composer");
  const input = document.getElementById("input");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const modelSelect = document.getElementById("model");
  const mcpInput = document.getElementById("mcp");
  const presetBoxes = Array.from(document.querySelectorAll(".mcp-preset"));
  const connection = document.getElementById("connection");

  let socket = null;
  let retryDelay = 500;
  // The reply being streamed: its bubble, its text node, and the offset the next chunk must start at.
  let live = null;
  // The message sent but not yet acknowledged by a `start` (or `duplicate`): resent, with the same
  // client id, after a reconnect whose history does not hold it yet. The server drops a resend.
  let pending = null;
  // Once the user changes the model or MCP controls, a history frame (which can arrive after that, and
  // again on every reconnect) must not put back the conversation's stored choice over theirs.
  let controlsTouched = false;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function newClientId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function codePoints(text) {
    let n = 0;
    for (const _ of text) n++;
    return n;
  }

  function scrollToEnd() {
    chat.scrollTop = chat.scrollHeight;
  }

  function setBusy(busy) {
    sendButton.disabled = busy;
    stopButton.hidden = !busy;
  }

  function setConnection(state, label) {
    connection.className = "connection " + state;
    connection.textContent = label;
  }

  function messageBubble(message) {
    const bubble = el("div", `message ${message.role} ${message.status || ""}`);
    bubble.dataset.messageId = message.id;
    const role = el("div", "role", message.role === "user" ? "You" : "Assistant");
    if (message.role === "assistant" && message.model) role.appendChild(el("span", "meta", message.model));
    bubble.appendChild(role);
    const tools = el("div", "tools");
    bubble.appendChild(tools);
    for (const activity of message.tools || []) tools.appendChild(toolEntry(activity));
    const content = el("div", "content");
    const text = document.createTextNode(message.content || "");
    content.appendChild(text);
    bubble.appendChild(content);
    bubble.appendChild(el("div", "status", statusLine(message)));
    chat.appendChild(bubble);
    return { bubble, text, tools };
  }

  function statusLine(message) {
    if (message.status === "error") return `Error: ${message.error || "the reply failed"}`;
    if (message.status === "interrupted") return "Stopped before the end.";
    if (message.status === "complete" && message.usage) return `${message.usage.total_tokens} tokens`;
    return "";
  }

  function toolEntry(activity) {
    const details = el("details", "tool");
    const verb = activity.phase === "result" ? "tool result" : "used tool";
    details.appendChild(el("summary", "", `${verb} ${activity.name}${activity.server ? " (" + activity.server + ")" : ""}`));
    const body = activity.phase === "result" ? activity.result : activity.arguments;
    details.appendChild(el("pre", "", JSON.stringify(body, null, 2)));
    return details;
  }

  function systemLine(text) {
    chat.appendChild(el("div", "system", text));
    scrollToEnd();
  }

  function startLive(messageId, model, content, offset) {
    const view = messageBubble({ id: messageId, role: "assistant", model, content, status: "streaming" });
    live = { messageId, offset, ...view };
    setBusy(true);
  }

  function finishLive(frame, status, errorText) {
    const bubble = live ? live.bubble : chat.querySelector(`[data-message-id="${frame.message_id}"]`);
    if (bubble) {
      bubble.classList.remove("streaming");
      bubble.classList.add(status);
      bubble.querySelector(".status").textContent = statusLine({ status, usage: frame.usage, error: errorText });
    }
    live = null;
    setBusy(false);
    document.dispatchEvent(new Event("chat:reply-ended"));
  }

  function settlePending() {
    if (pending !== null && input.value === pending.frame.message) input.value = "";
    pending = null;
  }

  function onHistory(frame) {
    chat.replaceChildren();
    live = null;
    const conversation = frame.conversation;
    if (!controlsTouched) {
      if (conversation.model && Array.from(modelSelect.options).some((o) => o.value === conversation.model)) {
        modelSelect.value = conversation.model;
      }
      const servers = new Set(conversation.mcp_servers || []);
      for (const box of presetBoxes) box.checked = servers.has(box.value);
      mcpInput.value = [...servers].filter((s) => !presetBoxes.some((b) => b.value === s)).join(", ");
    }
    const streaming = frame.streaming;
    for (const message of frame.messages) {
      if (streaming && message.id === streaming.message_id) continue;
      messageBubble(message);
    }
    if (streaming) {
      const message = frame.messages.find((m) => m.id === streaming.message_id) || {};
      startLive(streaming.message_id, message.model, streaming.content, streaming.offset);
    } else {
      setBusy(false);
    }
    if (pending !== null) {
      if (frame.messages.some((m) => m.client_id === pending.clientId)) {
        settlePending();
      } else {
        transmit(pending.frame); // lost with the old socket: send again, the same client id
      }
    }
    scrollToEnd();
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
      // Already have the start of this chunk (a resend): keep only what is new.
      content = Array.from(content).slice(live.offset - frame.offset).join("");
    }
    live.text.appendData(content);
    live.offset = end;
    live.resyncing = false;
    scrollToEnd();
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
      case "start":
        if (frame.user_message) messageBubble(frame.user_message);
        if (pending !== null && frame.user_message && frame.user_message.client_id === pending.clientId) {
          settlePending();
        }
        startLive(frame.message_id, frame.model, "", 0);
        scrollToEnd();
        break;
      case "chunk":
        onChunk(frame);
        break;
      case "duplicate":
        if (pending !== null && frame.client_id === pending.clientId) settlePending();
        break;
      case "tool":
        if (live && live.messageId === frame.message_id) live.tools.appendChild(toolEntry(frame));
        break;
      case "done":
        finishLive(frame, frame.finish_reason === "stopped" ? "interrupted" : "complete");
        input.focus();
        break;
      case "error":
        if (frame.message_id) {
          finishLive(frame, "error", frame.message);
        } else if (frame.code === "unavailable" && pending !== null) {
          socket.close(); // this server is going away: reconnect (maybe to another) and resend
        } else {
          systemLine(`Error: ${frame.message}`);
          pending = null;
          if (!live) setBusy(false);
        }
        break;
    }
  }

  let retryTimer = null;

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
    current.onmessage = onFrame;
    current.onclose = (event) => {
      if (socket !== current) return; // an older socket, already replaced
      if (event.code === 4401) {
        location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname)}`);
        return;
      }
      if (event.code === 4429) retryDelay = Math.max(retryDelay, 15000); // too many tabs: retry slowly
      setConnection("closed", event.code === 4429 ? "too many open chats: close a tab" : "reconnecting…");
      // Backoff with jitter, so a restarted server is not hit by every tab at once.
      retryTimer = setTimeout(connect, retryDelay * (0.5 + Math.random() / 2));
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
  }

  // The browser knows the network went away before TCP does: drop the socket now, and come back as
  // soon as the network does. The reply goes on on the server; the next history frame resumes it.
  window.addEventListener("offline", () => {
    if (socket) socket.close();
  });
  window.addEventListener("online", () => {
    retryDelay = 500;
    if (!socket || socket.readyState === WebSocket.CLOSED || socket.readyState === WebSocket.CLOSING) connect();
  });

  function selectedServers() {
    const typed = mcpInput.value.split(/[\s,]+/).filter(Boolean);
    const picked = presetBoxes.filter((box) => box.checked).map((box) => box.value);
    return [...new Set([...picked, ...typed])];
  }

  function transmit(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  function send() {
    const text = input.value;
    if (!text.trim() || !socket || socket.readyState !== WebSocket.OPEN || live || pending) return;
    const clientId = newClientId();
    pending = {
      clientId,
      frame: { message: text, model: modelSelect.value, mcp_servers: selectedServers(), client_id: clientId },
    };
    setBusy(true);
    transmit(pending.frame);
  }

  for (const control of [modelSelect, mcpInput, ...presetBoxes]) {
    control.addEventListener("input", () => {
      controlsTouched = true;
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
  stopButton.addEventListener("click", () => transmit({ type: "stop" }));

  connect();
})();
