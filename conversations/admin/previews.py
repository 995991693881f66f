"""Long texts in admin lists: a line's first words, so a row stays one line."""

from __future__ import annotations

PREVIEW_CHARS = 160
# A title in a list column: long enough to tell conversations apart, short enough to leave room.
TITLE_CHARS = 60


def preview(text: str, chars: int = PREVIEW_CHARS) -> str:
    """A text's first words on one line, cut at `chars` with an ellipsis (its own page shows it whole)."""
    line = " ".join(text.split())
    return line if len(line) <= chars else line[: chars - 1] + "…"
