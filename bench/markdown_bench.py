"""Markdown while streaming, in chromium: the page's incremental renderer beside a full re-render per frame.

Not a test. Loads the page's own scripts (marked, DOMPurify, highlight.js and markdown.js, from
node_modules and conversations/static) into a blank page, then feeds a ~20,000-word markdown reply to
each renderer in the same steps a stream would (one update per simulated frame) and reports the time
each spent rendering, side by side in one run.

usage: .venv/bin/python bench/markdown_bench.py [--words 20000] [--frames 600]
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
# The libraries, classic scripts as the page loads them, then markdown.js, an ES module imported from a
# data: URL (the blank page has no server to fetch it from).
LIBRARIES = [
    ROOT / "node_modules/marked/lib/marked.umd.js",
    ROOT / "node_modules/dompurify/dist/purify.min.js",
    ROOT / "node_modules/@highlightjs/cdn-assets/highlight.min.js",
]
MARKDOWN_MODULE = ROOT / "conversations/static/conversations/markdown.js"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]

MEASURE = """async ([text, frames, markdownUrl]) => {
    const { render, StreamingRenderer } = await import(markdownUrl);
    const cut = (i) => Math.round(text.length * (i + 1) / frames);
    const steps = Array.from({length: frames}, (_, i) => text.slice(0, cut(i)));
    const time = (run) => { const start = performance.now(); run(); return performance.now() - start; };
    const incremental = document.createElement('div'), full = document.createElement('div');
    document.body.append(incremental, full);
    const renderer = new StreamingRenderer(incremental);
    const perFrame = {incremental: [], full: []};
    for (const step of steps) {
        perFrame.incremental.push(time(() => renderer.update(step)));
        perFrame.full.push(time(() => full.replaceChildren(render(step))));
    }
    const finish = time(() => renderer.finish(text));
    const sum = (xs) => xs.reduce((a, b) => a + b, 0);
    const max = (xs) => Math.max(...xs);
    const same = incremental.textContent.replace(/\\s+/g, ' ') === full.textContent.replace(/\\s+/g, ' ');
    return {frames, characters: text.length, same_text: same,
            incremental_total_ms: sum(perFrame.incremental) + finish,
            incremental_max_frame_ms: max(perFrame.incremental), incremental_finish_ms: finish,
            full_total_ms: sum(perFrame.full), full_max_frame_ms: max(perFrame.full)};
}"""


def reply_markdown(words: int) -> str:
    """A long answer: headings, paragraphs, lists and a code block every fourth section."""
    parts, count, section = [], 0, 0
    while count < words:
        section += 1
        parts += [f"## Part {section}", " ".join(f"word{section}-{i}" for i in range(60))]
        parts.append("\n".join(f"- item {section}.{i} with some text" for i in range(5)))
        if section % 4 == 0:
            code = "\n".join(f"value_{i} = {i} * {section}" for i in range(8))
            parts.append(f"```python\n{code}\n```")
        count += 60 + 30 + 2 + (32 if section % 4 == 0 else 0)
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=20_000)
    parser.add_argument("--frames", type=int, default=600)
    args = parser.parse_args()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_content("<!DOCTYPE html><html><body></body></html>")
        for script in LIBRARIES:
            page.add_script_tag(path=str(script))
        encoded = base64.b64encode(MARKDOWN_MODULE.read_bytes()).decode()
        markdown_url = f"data:text/javascript;base64,{encoded}"
        result = page.evaluate(MEASURE, [reply_markdown(args.words), args.frames, markdown_url])
        browser.close()
    result["full_over_incremental"] = result["full_total_ms"] / result["incremental_total_ms"]
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
