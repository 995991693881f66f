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
  let pendingText = null;
  // Once the user changes the model or MCP controls, a history frame (which can arrive after that, and
  // again on every reconnect) must not put back the conversation's stored choice over theirs.
  let controlsTouched = false;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
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
    scrollToEnd();
  }

  function onChunk(frame) {
    if (!live || live.messageId !== frame.message_id) return;
    let content = frame.content;
    if (frame.offset < live.offset) {
      // Already have the start of this chunk (a resend): keep only what is new.
      const skip = live.offset - frame.offset;
      content = Array.from(content).slice(skip).join("");
    }
    live.text.appendData(content);
    live.offset = Math.max(live.offset, frame.offset + codePoints(frame.content));
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
        if (pendingText !== null && frame.user_message && frame.user_message.content === pendingText) {
          input.value = "";
          pendingText = null;
        }
        startLive(frame.message_id, frame.model, "", 0);
        scrollToEnd();
        break;
      case "chunk":
        onChunk(frame);
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
        } else {
          systemLine(`Error: ${frame.message}`);
          pendingText = null;
          if (!live) setBusy(false);
        }
        break;
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    setConnection("connecting", "connecting…");
    socket = new WebSocket(`${scheme}://${location.host}/ws/chat/${encodeURIComponent(sessionId)}/`);
    socket.onopen = () => {
      retryDelay = 500;
      setConnection("open", "connected");
    };
    socket.onmessage = onFrame;
    socket.onclose = () => {
      setConnection("closed", "reconnecting…");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
  }

  function selectedServers() {
    const typed = mcpInput.value.split(/[\s,]+/).filter(Boolean);
    const picked = presetBoxes.filter((box) => box.checked).map((box) => box.value);
    return [...new Set([...picked, ...typed])];
  }

  function send() {
    const text = input.value;
    if (!text.trim() || !socket || socket.readyState !== WebSocket.OPEN || live) return;
    pendingText = text;
    setBusy(true);
    socket.send(JSON.stringify({ message: text, model: modelSelect.value, mcp_servers: selectedServers() }));
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
  stopButton.addEventListener("click", () => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "stop" }));
  });

  connect();
})();
