"""A document cut into chunks to embed and cite: pure, no database, no network.

A document is its pages of text (a PDF's text layer gives pages; a text, Markdown or HTML file is one
page). Each page is cut at its Markdown headings into sections, and `semantic-text-splitter`'s Markdown
splitter cuts each section at the largest units that fit (blocks, paragraphs, sentences, words), so a
chunk never crosses a page or a heading. A chunk's size is the project's token estimate (a token per
four characters): the splitter counts characters, so nothing is downloaded and its count is the
estimate's exactly. Each chunk carries its page, its span in that page's text (`page_text[start:end] ==
chunk.text`) and the path of Markdown headings of its section (outermost first), carried from page to
page. Work is bounded: a document that would make more chunks than its cap is refused, before any
splitting when its text alone says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from semantic_text_splitter import MarkdownSplitter

from ..usage_ledger import CHARS_PER_TOKEN, tokens_estimate

# An ATX heading's opening (`## Title ##`); a fence opens and closes a code block, whose lines are not
# headings. Neither backtracks: a line's work is linear in its length, whatever it holds.
HEADING_RE = re.compile(r" {0,3}(#{1,6})(?=[ \t\r\n]|$)")
FENCE_RE = re.compile(r" {0,3}(`{3,}|~{3,})")
LINE_RE = re.compile(r"[^\n]*\n?")
HEADING_MAX_CHARS = 200


class TooManyChunks(ValueError):
    """The document would make more chunks than a document may have."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document: its page (from 1), its span in that page's text, its text, its section's
    headings (outermost first) and its estimated tokens."""

    page: int
    start: int
    end: int
    text: str
    headings: tuple[str, ...]
    tokens: int


def document_chunks(
    pages: Sequence[str], *, chunk_tokens: int | None = None, max_chunks: int | None = None
) -> list[Chunk]:
    """The chunks of a document given as its pages' text, in order, each at most `chunk_tokens` estimated
    tokens (default CHAT_KNOWLEDGE_CHUNK_TOKENS). Raise TooManyChunks past `max_chunks` (default
    CHAT_KNOWLEDGE_MAX_CHUNKS)."""
    chunk_tokens = chunk_tokens or settings.CHAT_KNOWLEDGE_CHUNK_TOKENS
    max_chunks = max_chunks or settings.CHAT_KNOWLEDGE_MAX_CHUNKS
    capacity = chunk_tokens * CHARS_PER_TOKEN
    # Chunks are trimmed and none is over capacity, so the text that is not whitespace needs at least this
    # many: a document sure to exceed the cap costs no splitting.
    least = -(-sum(len("".join(page.split())) for page in pages) // capacity)
    if least > max_chunks:
        raise TooManyChunks(f"the document makes at least {least} chunks, over the {max_chunks} allowed")
    splitter = MarkdownSplitter(capacity)
    chunks: list[Chunk] = []
    path: list[tuple[int, str]] = []  # (level, title) of the headings in force, carried over pages
    for number, text in enumerate(pages, start=1):
        for begin, end, heading in page_sections(text):
            if heading is not None:
                level, title = heading
                while path and path[-1][0] >= level:
                    path.pop()
                path.append((level, title))
            titles = tuple(title for _, title in path)
            for start, piece in splitter.chunk_indices(text[begin:end]):
                if not piece.strip():  # a control character Python counts as space, the splitter not
                    continue
                start += begin
                chunk = Chunk(number, start, start + len(piece), piece, titles, tokens_estimate(len(piece)))
                chunks.append(chunk)
                if len(chunks) > max_chunks:
                    raise TooManyChunks(f"the document makes more than the {max_chunks} chunks allowed")
    return chunks


def page_sections(text: str) -> list[tuple[int, int, tuple[int, str] | None]]:
    """The page cut at its headings: (start, end, the (level, title) of the heading it starts with, or
    None for the text before the first)."""
    headings = page_headings(text)
    starts = [offset for offset, _, _ in headings]
    sections: list[tuple[int, int, tuple[int, str] | None]] = []
    if not starts or starts[0] > 0:
        sections.append((0, starts[0] if starts else len(text), None))
    for index, (offset, level, title) in enumerate(headings):
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        sections.append((offset, end, (level, title)))
    return sections


def page_headings(text: str) -> list[tuple[int, int, str]]:
    """The page's Markdown headings outside code blocks, in order: (offset, level, title)."""
    found: list[tuple[int, int, str]] = []
    fence = ""
    for line in LINE_RE.finditer(text):
        if not line.group():
            break
        opening = FENCE_RE.match(line.group())
        if fence:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = ""
            continue
        if opening:
            fence = opening.group(1)
            continue
        heading = HEADING_RE.match(line.group())
        title = _heading_title(line.group()[heading.end() :]) if heading else ""
        if title:
            found.append((line.start(), len(heading.group(1)), title[:HEADING_MAX_CHARS]))
    return found


def _heading_title(rest: str) -> str:
    """A heading's title: the rest of its line, without the closing run of `#` that follows a space."""
    title = rest.strip()
    unclosed = title.rstrip("#")
    if unclosed != title and (not unclosed or unclosed[-1] in " \t"):
        title = unclosed.rstrip()
    return title
