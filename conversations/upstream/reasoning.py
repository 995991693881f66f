"""A model's reasoning in the shapes gateways stream it, kept apart from the reply's text.

Gateways put it in `delta.reasoning_content` (DeepSeek, vLLM), `delta.reasoning` (OpenRouter, Ollama) or
`delta.reasoning_details[].text`; some models write it into the text itself, as a `<think>…</think>`
prefix, which `ThinkSplit` takes off the text however the chunks cut its tags.
"""

from __future__ import annotations

from typing import Any

# Any of these keys in a delta means it may carry reasoning (one set test per delta when none does).
REASONING_KEYS = frozenset({"reasoning_content", "reasoning", "reasoning_details"})

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def reasoning_of(delta: dict[str, Any]) -> str:
    """The reasoning text a delta carries in one of the gateways' fields ("" for none). A gateway that
    fills several with the same words (OpenRouter: `reasoning` and `reasoning_details`) counts once."""
    for key in ("reasoning_content", "reasoning"):
        value = delta.get(key)
        if isinstance(value, str) and value:
            return value
    details = delta.get("reasoning_details")
    if not isinstance(details, list):
        return ""
    return "".join(
        text
        for detail in details
        if isinstance(detail, dict) and isinstance(text := detail.get("text") or detail.get("summary"), str)
    )


class ThinkSplit:
    """Takes a `<think>…</think>` prefix off a reply's text as it streams: `feed` each piece of text,
    get back the reasoning and the text in it; `end` gives back what it still held when the reply ends.

    It holds back at most a tag's length: the start of the text until it shows whether it opens with
    `<think>`, and, inside, an ending that may be the start of `</think>`. The blanks between the closing
    tag and the reply are dropped, in whichever chunks they come.
    """

    __slots__ = ("held", "phase")

    OPENING, INSIDE, CLOSED = range(3)

    def __init__(self) -> None:
        self.held = ""
        self.phase = self.OPENING

    def feed(self, text: str) -> tuple[str, str, bool]:
        """The reasoning and the reply text in `text`, and whether the split is over (the text that
        follows is all reply, and this need not be fed again)."""
        text = self.held + text
        self.held = ""
        if self.phase == self.OPENING:
            opening = text.lstrip()
            if opening.startswith(THINK_OPEN):
                self.phase = self.INSIDE
                text = opening[len(THINK_OPEN) :]
            elif THINK_OPEN.startswith(opening):  # only blanks, or a tag cut short so far
                self.held = text
                return "", "", False
            else:
                return "", text, True
        if self.phase == self.INSIDE:
            close = text.find(THINK_CLOSE)
            if close < 0:
                keep = _tag_start_length(text)
                self.held = text[len(text) - keep :] if keep else ""
                return text[: len(text) - keep], "", False
            thought, text = text[:close], text[close + len(THINK_CLOSE) :]
            self.phase = self.CLOSED
        else:
            thought = ""
        text = text.lstrip()
        return thought, text, bool(text)

    def end(self) -> tuple[str, str]:
        """What was held back when the reply ended: reasoning cut off inside its tag, or the text."""
        held, self.held = self.held, ""
        return (held, "") if self.phase == self.INSIDE else ("", held)


def _tag_start_length(text: str) -> int:
    """The length of the longest ending of `text` that could begin a `</think>`."""
    for length in range(min(len(THINK_CLOSE) - 1, len(text)), 0, -1):
        if THINK_CLOSE.startswith(text[-length:]):
            return length
    return 0
