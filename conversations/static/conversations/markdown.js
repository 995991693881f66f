// Markdown for replies: marked parses, DOMPurify sanitises, highlight.js colours code. Raw HTML in a
// reply is shown as text (never interpreted), links open in a new tab, and every code block gets a copy
// button. Without the libraries (node_modules not installed) replies fall back to plain text.

export const available = Boolean(window.marked && window.DOMPurify);
// Highlighting a block this long on every animation frame would make a long reply lag: the streaming
// tail stays plain until the block is finished (frozen) or the reply ends.
const TAIL_HIGHLIGHT_LIMIT = 4000;
const TAIL_PARSE_LIMIT = 16000;
// A fence opens after optional indentation and list marker; a backtick fence's info has no backtick
// (else the line is inline code). It closes with the same character, at least as many, and nothing else.
const FENCE_OPEN_RE = /^\s*(?:(?:[-*+]|\d{1,9}[.)])\s+)?(`{3,}(?=[^`]*$)|~{3,})/;
const FENCE_CLOSE_RE = /^\s*(`{3,}|~{3,})\s*$/;
// A new block may start (and earlier ones freeze) only at a line that cannot continue a list.
const BLOCK_START_RE = /^(?![-*+](?:\s|$)|\d{1,9}[.)](?:\s|$))\S/;
// Link reference definitions and raw HTML blocks reach across blocks: such a reply is rendered whole
// when it ends, so its final form is exactly a full render's.
const CROSS_BLOCK_RE = /^ {0,3}(?:\[[^\]]+\]:|<)/m;

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

const parser = available
  ? new window.marked.Marked({
      gfm: true,
      breaks: false,
      renderer: {
        // Raw HTML from the model is text, as the user would see it in any plain chat.
        html: ({ text }) => escapeHtml(text),
        // No images from replies (they would load third-party URLs): a link to it, named by its alt text.
        image: ({ href, text }) => `<a href="${escapeHtml(href || "")}">${escapeHtml(text || href || "image")}</a>`,
      },
    })
  : null;

if (available) {
  window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A" && node.getAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
}

function sanitizedFragment(markdown) {
  return window.DOMPurify.sanitize(parser.parse(markdown), {
    RETURN_DOM_FRAGMENT: true,
    FORBID_TAGS: ["style", "form", "img", "iframe"],
    FORBID_ATTR: ["style"],
    ADD_ATTR: ["target"],
  });
}

function codeBlocksDecorate(root, highlight) {
  for (const code of root.querySelectorAll("pre > code")) {
    const pre = code.parentElement;
    if (pre.parentElement && pre.parentElement.classList.contains("code-block")) continue;
    const language = (code.className.match(/language-([\w+#.-]+)/) || [])[1] || "";
    if (highlight && window.hljs) {
      if (language && window.hljs.getLanguage(language)) {
        // highlight() escapes all it returns; the language is the one the block names (c#, f#, …).
        code.innerHTML = window.hljs.highlight(code.textContent, { language, ignoreIllegals: true }).value;
      }
      code.classList.add("hljs");
    }
    const block = document.createElement("div");
    block.className = "code-block";
    const bar = document.createElement("div");
    bar.className = "code-bar";
    const label = document.createElement("span");
    label.textContent = language || "code";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "copy-code";
    copy.textContent = "Copy";
    copy.setAttribute("aria-label", `Copy ${language || "code"} block`);
    bar.append(label, copy);
    pre.replaceWith(block);
    block.append(bar, pre);
  }
}

function lineEndsNormalize(text) {
  return text.includes("\r") ? text.replace(/\r\n?/g, "\n") : text;
}

/** The rendered DOM of a whole markdown text (a DocumentFragment). */
export function render(markdown, { highlight = true } = {}) {
  if (!available) {
    const fragment = document.createDocumentFragment();
    const text = document.createElement("div");
    text.className = "plain";
    text.textContent = markdown;
    fragment.appendChild(text);
    return fragment;
  }
  const fragment = sanitizedFragment(markdown);
  codeBlocksDecorate(fragment, highlight);
  return fragment;
}

// Blocks the streaming cursor goes inside of, down to the innermost one that holds the last words.
const CURSOR_CONTAINERS = new Set([
  "BLOCKQUOTE", "UL", "OL", "LI", "TABLE", "THEAD", "TBODY", "TR", "TD", "TH", "P", "DIV",
  "H1", "H2", "H3", "H4", "H5", "H6", "PRE", "DETAILS",
]);

/** Mark where the cursor goes: after the last words, inside a quote, a list item or a cell. */
function cursorMark(root) {
  let node = root;
  while (node.lastElementChild && CURSOR_CONTAINERS.has(node.lastElementChild.tagName)) {
    const last = node.lastElementChild;
    const after = last.nextSibling;
    if (after && after.nodeType === Node.TEXT_NODE && after.data.trim()) break; // words follow it
    node = last;
  }
  if (node !== root) node.classList.add("md-cursor");
}

/**
 * Renders a reply while it streams, in time proportional to what changed, not to the whole reply:
 * text up to the last block boundary (a blank line outside a code fence, followed by a line that
 * starts a new block) is rendered once and frozen; only the tail after it is rendered again.
 */
export class StreamingRenderer {
  constructor(container) {
    this.container = container;
    this.frozen = document.createElement("div");
    this.frozen.className = "md-frozen";
    this.tail = document.createElement("div");
    this.tail.className = "md-tail";
    container.replaceChildren(this.frozen, this.tail);
    this.text = "";
    this.frozenEnd = 0; // text[0:frozenEnd] is in this.frozen
    this.scanFrom = 0; // where the next boundary scan starts (a line start)
    this.inFence = null; // the open fence's marker ("```" / "~~~"), or null
    this.boundary = 0;
    this.blankBefore = false; // the last scanned line was blank (outside a fence)
    this.plainTail = null; // the tail's text node while it is too long to parse per frame
  }

  update(text) {
    text = lineEndsNormalize(text);
    this.freeze(text);
    const tail = text.slice(this.frozenEnd);
    if (tail.length > TAIL_PARSE_LIMIT) {
      // One huge block with no boundary yet (a long paragraph or code block): parsing it again on
      // every frame would grow without bound, so it is shown as text until the reply ends.
      if (this.plainTail === null) {
        this.plainTail = document.createTextNode("");
        const plain = document.createElement("div");
        plain.className = "plain";
        plain.appendChild(this.plainTail);
        this.tail.replaceChildren(plain);
      }
      this.plainTail.appendData(tail.slice(this.plainTail.length));
      this.plainTail.parentNode.classList.add("md-cursor");
      return;
    }
    this.tail.replaceChildren(render(tail, { highlight: tail.length <= TAIL_HIGHLIGHT_LIMIT }));
    cursorMark(this.tail);
  }

  /** Find the last safe boundary among the complete lines not scanned yet. */
  scan() {
    const text = this.text;
    while (true) {
      const end = text.indexOf("\n", this.scanFrom);
      if (end === -1) return; // the last line is still being written
      const line = text.slice(this.scanFrom, end);
      const blank = line.trim() === "";
      if (this.inFence === null && this.blankBefore && BLOCK_START_RE.test(line)) {
        this.boundary = this.scanFrom; // a new top-level block starts here
      }
      if (this.inFence === null) {
        const open = line.match(FENCE_OPEN_RE);
        if (open) this.inFence = open[1];
      } else {
        const close = line.match(FENCE_CLOSE_RE);
        if (close && close[1][0] === this.inFence[0] && close[1].length >= this.inFence.length) this.inFence = null;
      }
      this.blankBefore = blank && this.inFence === null;
      this.scanFrom = end + 1;
    }
  }

  /** The reply ended: the last blocks get their final render (and highlighting); frozen ones stay. */
  finish(text) {
    text = lineEndsNormalize(text);
    if (CROSS_BLOCK_RE.test(text)) {
      this.container.replaceChildren(render(text));
      return;
    }
    this.freeze(text);
    this.tail.replaceChildren(render(text.slice(this.frozenEnd)));
  }

  /** Render, once, the blocks that `text` finished since the last call, and move them out of the tail. */
  freeze(text) {
    this.text = text;
    this.scan();
    if (this.boundary > this.frozenEnd) {
      this.frozen.appendChild(render(text.slice(this.frozenEnd, this.boundary)));
      this.frozenEnd = this.boundary;
      this.plainTail = null;
    }
  }
}
