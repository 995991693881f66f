// A reply's reasoning: what the model thought before it answered, in a block of its own that says how
// long ("Thought for 4 s"). Open while the model thinks, closed once the answer starts (a click opens it
// again). A model that reported reasoning tokens but no words gets the line alone. The words reach the
// DOM as plain text, never as markup.

/** "Thought for N s" (whole seconds, at least 1); "Thought" when the duration is not known yet. */
export function reasoningLabel(ms) {
  if (ms === null || ms === undefined) return "Thought";
  return `Thought for ${Math.max(1, Math.round(ms / 1000))} s`;
}

/** The block of a reply that thought (its words so far, `thinking` while it still does), or null. */
export function reasoningView({ reasoning = "", reasoning_ms: ms = null, thinking = false }) {
  if (!reasoning && ms === null && !thinking) return null;
  if (!reasoning && !thinking) {
    const line = document.createElement("p");
    line.className = "reasoning reasoning-unseen";
    line.textContent = reasoningLabel(ms);
    return line;
  }
  const block = document.createElement("details");
  block.className = "reasoning";
  const summary = document.createElement("summary");
  const words = document.createElement("div");
  words.className = "reasoning-text";
  words.textContent = reasoning;
  block.append(summary, words);
  reasoningThinking(block, thinking, ms);
  return block;
}

/** Show the block as thinking (open, "Thinking…"), or as done (closed, how long it took). */
export function reasoningThinking(block, thinking, ms = null) {
  const summary = block.querySelector("summary");
  if (!summary) {
    block.textContent = reasoningLabel(ms);
    return;
  }
  block.classList.toggle("thinking", thinking);
  summary.textContent = thinking ? "Thinking…" : reasoningLabel(ms);
  block.open = thinking;
}

/** The block's words, as they stand now. */
export function reasoningWords(block, text) {
  const words = block.querySelector(".reasoning-text");
  if (words) words.textContent = text;
}
