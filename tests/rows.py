"""Rows the tests create directly, with the values most tests do not care about filled in."""

from __future__ import annotations

from typing import Any

from conversations.models import Conversation, Message

REPLY_DEFAULTS: dict[str, Any] = {"content": "a", "model": "openai/gpt-5.1", "status": "complete"}


def reply_row(conversation: Conversation, **fields: Any) -> Message:
    """An assistant message of `conversation`: complete, from GPT-5.1, saying "a", unless `fields` say
    otherwise."""
    return Message.objects.create(conversation=conversation, role="assistant", **{**REPLY_DEFAULTS, **fields})
