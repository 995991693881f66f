"""What of a conversation fits in a model's context window: the newest turns, estimated on the safe side.

No tokenizer is used (none works offline for every model the API routes to): a message is counted as
one token per three bytes of its UTF-8 text, plus a few for its framing, which overestimates every
tokenizer in use for English and code, and most for other scripts. The instructions always go; older
turns are left out first, and the newest user message is never left out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

BYTES_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 4


def tokens_estimate(text: str) -> int:
    """A token count for `text` that is at least what the model's tokenizer counts, as a rule."""
    return math.ceil(len(text.encode("utf-8", "surrogatepass")) / BYTES_PER_TOKEN) + TOKENS_PER_MESSAGE


def _message_tokens(message: dict[str, Any]) -> int:
    # `extra_tokens`: what its attachments add (attachment_parts.attachment_tokens); an API reply's tool
    # calls count as their JSON.
    calls = message.get("tool_calls")
    called = tokens_estimate(json.dumps(calls)) if calls else 0
    return tokens_estimate(message["content"]) + message.get("extra_tokens", 0) + called


def context_fit(
    messages: Sequence[dict[str, Any]], *, instructions: str, input_limit: int | None, reserve: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Return the newest `messages` that fit in `input_limit` tokens beside the instructions and
    `reserve` (the reply's own tokens, where the limit counts them), and how many older ones were left
    out. The kept messages start with a user message (tool results with the turn that called the tools);
    without a limit, all are kept."""
    if not input_limit or not messages:
        return list(messages), 0
    budget = input_limit - reserve - (tokens_estimate(instructions) if instructions else 0)
    kept = len(messages) - 1  # the newest message always goes: without it there is nothing to answer
    budget -= _message_tokens(messages[kept])
    while kept > 0 and (cost := _message_tokens(messages[kept - 1])) <= budget:
        budget -= cost
        kept -= 1
    while kept < len(messages) - 1 and messages[kept]["role"] != "user":
        kept += 1  # a reply without the message it answers would confuse the model
    if messages[kept]["role"] == "tool":
        # The newest messages are tool results: the turn that called the tools goes with them (the
        # upstream refuses a result without its call), even past the limit.
        kept = next((i for i in range(kept, -1, -1) if messages[i]["role"] == "user"), 0)
    return list(messages[kept:]), kept
