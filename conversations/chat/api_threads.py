"""Which stored API conversation a chat completion request continues, and where in it. OpenAI's clients
send the whole history with each request: a request continues the conversation its X-Conversation-Id
names, or the one whose active branch its earlier messages repeat exactly; else it starts a new one. A
named conversation whose active branch the sent history leaves (a client edited or dropped a turn) gets
a new branch where they part, as an edit on the page makes one: the model answers the history sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..models import Conversation, Message
from .threads import thread_leaf_id, thread_path_ids, thread_siblings
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
    wanted = [_sent_compared(message) for message in history]
    for pk, session_id, current_id in candidates:
        if _active_branch(pk, current_id) == wanted:
            return session_id
    return None


@dataclass(frozen=True, slots=True)
class ApiBranch:
    """Where a request's turns go when its history leaves the stored active branch: after the stored
    message `parent_id` (None: as a new first message), its earlier messages not stored there
    (`preceding`) first."""

    parent_id: int | None
    preceding: tuple[PriorMessage, ...]


def api_history_branch(
    *, session_id: str, owner_key: str, history: Sequence[PriorMessage]
) -> ApiBranch | None:
    """Where the owner's API conversation `session_id` parts from `history` (the request's messages
    before its last turn): None when the request continues the active branch (it sent no history, or
    the history is that branch or its end: a client that trims old turns, or sends only the last
    exchange), else the branch to make. The history is followed down the stored tree from its first
    messages, the active branch's message taken where siblings are alike, so a history that returns to
    an older version goes on from it; replies that ended without text, which the client never got, are
    stepped over; tool calls are compared by their ids. One read of the conversation's messages; the
    walk is one step per message sent."""
    if not history:
        return None
    conversation = (
        Conversation.objects.filter(
            owner_key=owner_key, session_id=session_id, source=Conversation.Source.API
        )
        .values_list("pk", "current_message_id")
        .first()
    )
    if conversation is None:  # deleted since the caller found it: the turn will say so
        return None
    rows = _compared_rows(conversation[0])
    pairs = [(pk, parent_id) for pk, (parent_id, _) in rows.items()]
    children = thread_siblings(pairs)
    active = thread_path_ids(pairs, thread_leaf_id(pairs, conversation[1]))

    def textless(pk: int) -> bool:
        return _unseen(rows[pk][1])

    def following(parent_id: int | None) -> list[int]:
        """The messages a client would see after `parent_id`: its children, a textless reply's own
        children in its place (bounded: a step down the tree each)."""
        found: list[int] = []
        waiting = list(children.get(parent_id, []))
        while waiting:
            pk = waiting.pop(0)
            if textless(pk):
                waiting.extend(children.get(pk, []))
            else:
                found.append(pk)
        return found

    wanted = [_sent_compared(sent) for sent in history]
    seen = [rows[pk][1] for pk in active if not textless(pk)]
    if len(wanted) <= len(seen) and seen[len(seen) - len(wanted) :] == wanted:
        return None  # the active branch's end: a client that trims old turns, or sends the last exchange
    on_active = set(active)
    node: int | None = None
    matched = 0
    for compared in wanted:
        alike = [pk for pk in following(node) if rows[pk][1] == compared]
        if not alike:
            break
        node = next((pk for pk in alike if pk in on_active), alike[-1])
        matched += 1
    return ApiBranch(node, tuple(history[matched:]))


def _compared(role: str, content: str, tool_calls: list[dict], tool_call_id: str) -> tuple:
    """What of a message must match: its role, text, the ids of the tool calls it made, its call's id."""
    return role, content, tuple(call.get("id") for call in tool_calls), tool_call_id


def _sent_compared(message: PriorMessage) -> tuple:
    return _compared(message.role, message.content, message.tool_calls, message.tool_call_id)


def _unseen(compared: tuple) -> bool:
    """A reply that ended without text or tool calls: its client never got it."""
    role, content, call_ids, _ = compared
    return role == Message.Role.ASSISTANT and not content and not call_ids


def _compared_rows(conversation_id: int) -> dict[int, tuple[int | None, tuple]]:
    """Every message of the conversation, oldest first: its parent and what of it must match."""
    return {
        pk: (parent_id, _compared(role, content, tool_calls, tool_call_id))
        for pk, parent_id, role, content, tool_calls, tool_call_id in Message.objects.filter(
            conversation_id=conversation_id
        )
        .order_by("pk")
        .values_list("pk", "parent_id", "role", "content", "tool_calls", "tool_call_id")
    }


def _active_branch(conversation_id: int, current_id: int | None) -> list[tuple]:
    rows = _compared_rows(conversation_id)
    pairs = [(pk, row[0]) for pk, row in rows.items()]
    path = thread_path_ids(pairs, thread_leaf_id(pairs, current_id))
    return [rows[pk][1] for pk in path if not _unseen(rows[pk][1])]
