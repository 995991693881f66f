"""The numbered sources a request gives the stand-in, and which of them its answer cites.

A source is an entry of a system message or of the last user message that starts a line with `[n] `,
numbered from 1 in order; it runs to the next entry's line or the message's end. A `[7] ` line where
the next number is 3 is part of the text, not an entry. The answer cites, as `[n]`, each source sharing a
word (not a stopword, at least three letters) with the question. Free of Django, like the stand-in.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .answers import STOPWORDS

ENTRY_RE = re.compile(r"^\[(\d+)\] ", re.MULTILINE)
WORD_RE = re.compile(r"\w+")


class Source(NamedTuple):
    number: int
    text: str


def sources_split(text: str) -> tuple[list[Source], str]:
    """The numbered sources in `text`, and `text` before the first of them (the question, in a user
    message that carries its sources)."""
    starts: list[tuple[int, int, int]] = []  # (number, where its line starts, where its text starts)
    for match in ENTRY_RE.finditer(text):
        if int(match.group(1)) == len(starts) + 1:
            starts.append((len(starts) + 1, match.start(), match.end()))
    sources = [
        Source(number, text[begin : starts[index + 1][1] if index + 1 < len(starts) else len(text)].strip())
        for index, (number, _, begin) in enumerate(starts)
    ]
    return sources, text[: starts[0][1]] if starts else text


def _words(text: str) -> set[str]:
    return {word for word in WORD_RE.findall(text.lower()) if len(word) >= 3 and word not in STOPWORDS}


def sources_cited(sources: list[Source], question: str) -> list[Source]:
    """The sources sharing a word with the question, in order."""
    asked = _words(question)
    return [source for source in sources if asked & _words(source.text)]


def citing_paragraph(sources: list[Source], question: str) -> str:
    """The answer's first paragraph when sources were given: each cited one quoted by its first words and
    marked `[n]`, or a sentence saying none of them speaks of the question."""
    cited = sources_cited(sources, question)
    if not cited:
        return "None of the sources given speaks of this."
    markers = " ".join(f"[{source.number}]" for source in cited)
    quotes = "; ".join(f"“{' '.join(source.text.split()[:6])}” [{source.number}]" for source in cited)
    return f"According to the sources {markers}: {quotes}."
