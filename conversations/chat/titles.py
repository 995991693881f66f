"""A conversation's title: the cleaned first line of its first message, then the model's (asked once,
after the first reply), unless the user renamed it: a title the user wrote is never overwritten."""

from __future__ import annotations

import re

TITLE_LENGTH = 60
# What the model is shown of the conversation: enough to name it, little enough to stay cheap.
TITLE_EXCERPT_CHARS = 1500
TITLE_INSTRUCTIONS = (
    "Write a title for the conversation below: at most six words, in the language of the user's "
    "message. Answer with the title only, without quotes or a final period."
)

# The stand-in's directives (`[[standin tokens=3]]`) steer tests and demos: never part of a title.
DIRECTIVE_RE = re.compile(r"\[\[standin[^\]]*\]\]")
LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")  # [words](url) -> words
LINE_MARKER_RE = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+]\s+|\d+[.)]\s+)+")  # heading, quote, list item
INLINE_MARKER_RE = re.compile(r"\*\*|__|[*`~]|(?<!\w)_|_(?!\w)")
QUOTES = "\"'“”‘’«»`"


def text_without_directives(content: str) -> str:
    return DIRECTIVE_RE.sub(" ", content)


def title_first_line(content: str) -> str:
    """A title from a message: its first line with words, without the stand-in's directives and
    Markdown's markers, whitespace collapsed, cut at a word boundary to TITLE_LENGTH ("" if none)."""
    for line in text_without_directives(content).splitlines():
        line = INLINE_MARKER_RE.sub("", LINE_MARKER_RE.sub("", LINK_RE.sub(r"\1", line)))
        words = " ".join(line.split())
        if words:
            return _cut(words)
    return ""


def title_from_model(answer: str) -> str:
    """The title in a model's answer: its first line, cleaned as a first line is, without the quotes,
    the "Title:" label or the final period a model may add ("" if none)."""
    line = title_first_line(answer)
    line = re.sub(r"^title\s*:\s*", "", line, flags=re.IGNORECASE).strip(QUOTES + " ")
    return line.rstrip(".").strip(QUOTES + " ")


def _cut(words: str) -> str:
    if len(words) <= TITLE_LENGTH:
        return words
    cut = words[: TITLE_LENGTH - 1]
    if " " in cut and words[TITLE_LENGTH - 1] != " ":
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + "…"


def title_request(*, question: str, answer: str) -> list[dict[str, str]]:
    """The messages that ask the model to name a conversation from its first question and reply (both in
    the reply's memory when it ends: no query)."""
    question = " ".join(text_without_directives(question).split())[:TITLE_EXCERPT_CHARS]
    return [
        {"role": "system", "content": TITLE_INSTRUCTIONS},
        {"role": "user", "content": f"User: {question}\n\nAssistant: {answer[:TITLE_EXCERPT_CHARS]}"},
    ]
