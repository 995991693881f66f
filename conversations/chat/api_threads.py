"""Which stored API conversation a chat completion request continues. OpenAI's clients send the whole
history with each request: a request continues the conversation its X-Conversation-Id names, or the one
whose active branch its earlier messages repeat exactly; else it starts a new one."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Conversation, Message
from .threads import thread_leaf_id, thread_path_ids
from .turns import PriorMessage

# Conversations compared with a request's history, newest first: a bounded read per request.
CANDIDATES_MAX = 5


def api_conversation_exists(*, owner_key: str, session_id: str) -> bool:
    return Conversation.objects.filter(
        owner_key=owner_key, session_id=session_id, source=Conversation.Source.API
    ).exists()


def api_conversation_continued(*, owner_key: str, history: Sequence[PriorMessage]) -> str | None:
    """The session id of the owner's newest API conversation whose active branch is `history` (oldest
    first; replies that ended without text or tool calls left out; tool calls compared by their ids),
    or None."""
    if not history:
        return None
    if history[0].role != Message.Role.USER:
        return None
    first = history[0].content
    candidates = (
        Conversation.objects.filter(
            owner_key=owner_key,
            source=Conversation.Source.API,
            messages__parent__isnull=True,
            messages__role=Message.Role.USER,
            messages__content=first,
        )
        .order_by("-updated_at")
        .values_list("pk", "session_id", "current_message_id")[:CANDIDATES_MAX]
    )
    wanted = [_compared(m.role, m.content, m.tool_calls, m.tool_call_id) for m in history]
    for pk, session_id, current_id in candidates:
        if _active_branch(pk, current_id) == wanted:
            return session_id
    return None


def _compared(role: str, content: str, tool_calls: list[dict], tool_call_id: str) -> tuple:
    """What of a message must match: its role, text, the ids of the tool calls it made, its call's id."""
    return role, content, tuple(call.get("id") for call in tool_calls), tool_call_id


def _active_branch(conversation_id: int, current_id: int | None) -> list[tuple]:
    rows = {
        pk: (parent_id, role, content, tool_calls, tool_call_id)
        for pk, parent_id, role, content, tool_calls, tool_call_id in Message.objects.filter(
            conversation_id=conversation_id
        ).values_list("pk", "parent_id", "role", "content", "tool_calls", "tool_call_id")
    }
    pairs = sorted((pk, row[0]) for pk, row in rows.items())
    path = thread_path_ids(pairs, thread_leaf_id(pairs, current_id))
    return [
        _compared(*rows[pk][1:])
        for pk in path
        if rows[pk][2] or rows[pk][3] or rows[pk][1] != Message.Role.ASSISTANT
    ]
