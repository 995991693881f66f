"""Feedback on replies: their owner's thumbs up or down and comment, changeable, and how it is shown."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from ..exceptions import NoSuchReply
from ..models import Feedback, Message
from ..owners import ConversationRef

COMMENT_MAX = 2000


@transaction.atomic
def feedback_set(*, ref: ConversationRef, message_id: int, value: int, comment: str = "") -> dict[str, Any]:
    """Store the conversation owner's feedback on one of its replies (`value` 1 or -1; 0 takes it back)
    and return it as the `feedback` frame shows it. Raise NoSuchReply when `message_id` is not a reply
    of this conversation (another owner's looks the same)."""
    reply = Message.objects.filter(
        pk=message_id,
        role=Message.Role.ASSISTANT,
        conversation__owner_key=ref.owner_key,
        conversation__session_id=ref.session_id,
    ).first()
    if reply is None:
        raise NoSuchReply()
    if value == 0:
        Feedback.objects.filter(message=reply).delete()
        return {"message_id": reply.pk, "value": 0, "comment": ""}
    feedback, _ = Feedback.objects.update_or_create(
        message=reply, defaults={"rating": value, "comment": comment.strip()}
    )
    return {"message_id": reply.pk, **feedback_as_dict(feedback)}


def feedback_as_dict(feedback: Feedback) -> dict[str, Any]:
    return {"value": feedback.rating, "comment": feedback.comment}


def feedback_shown(messages: Iterable[Message]) -> dict[int, dict[str, Any]]:
    """The feedback on these messages' replies, by message id (one query, none without replies)."""
    ids = [message.pk for message in messages if message.role == Message.Role.ASSISTANT]
    if not ids:
        return {}
    return {row.message_id: feedback_as_dict(row) for row in Feedback.objects.filter(message_id__in=ids)}
