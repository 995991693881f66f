"""Text made storable where it enters the server: Postgres text and jsonb refuse U+0000, and no
encoder takes a lone surrogate, so either would fail a write long after the frame was accepted."""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


def _storable_char(match: re.Match[str]) -> str:
    return "" if match.group() == "\x00" else "\ufffd"


def text_storable(value: str) -> str:
    """Return `value` without U+0000 and with each lone surrogate replaced by U+FFFD."""
    if value.isascii():
        return value.replace("\x00", "") if "\x00" in value else value
    return _UNSTORABLE_RE.sub(_storable_char, value)


def json_storable(value: Any) -> Any:
    """Return a JSON-like value with every string in it (keys included) made storable."""
    if isinstance(value, str):
        return text_storable(value)
    if isinstance(value, dict):
        return {text_storable(str(key)): json_storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_storable(item) for item in value]
    return value
