"""Feedback on replies: their owner's thumbs up or down and comment, changeable, and how it is shown."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from .models import Feedback, Message

COMMENT_MAX = 2000
RATINGS = {"up": Feedback.Rating.UP, "down": Feedback.Rating.DOWN}


class FeedbackRefused(ValueError):
    """Feedback that is not `{"rating": "up" | "down" | null, "comment": "..."}`."""


@transaction.atomic
def feedback_give(
    *, owner_key: str, message_id: int, rating: Any, comment: Any = ""
) -> dict[str, Any] | None:
    """Store the owner's feedback on one of their replies (a null rating takes it back); return it as
    shown, or None when the message is not one of the owner's replies. Raise FeedbackRefused."""
    reply = Message.objects.filter(
        pk=message_id, role=Message.Role.ASSISTANT, conversation__owner_key=owner_key
    ).first()
    if reply is None:
        return None
    if rating is None:
        Feedback.objects.filter(message=reply).delete()
        return {"rating": None, "comment": ""}
    if rating not in RATINGS:
        raise FeedbackRefused('`rating` is "up", "down" or null.')
    if not isinstance(comment, str) or len(comment) > COMMENT_MAX:
        raise FeedbackRefused(f"`comment` is a text of at most {COMMENT_MAX} characters.")
    feedback, _ = Feedback.objects.update_or_create(
        message=reply, defaults={"rating": RATINGS[rating], "comment": comment.replace("\x00", "").strip()}
    )
    return feedback_as_dict(feedback)


def feedback_as_dict(feedback: Feedback) -> dict[str, Any]:
    return {"rating": feedback.get_rating_display(), "comment": feedback.comment}


def feedback_shown(messages: Iterable[Message]) -> dict[int, dict[str, Any]]:
    """The feedback on these messages' replies, by message id (one query, none without replies)."""
    ids = [message.pk for message in messages if message.role == Message.Role.ASSISTANT]
    if not ids:
        return {}
    return {row.message_id: feedback_as_dict(row) for row in Feedback.objects.filter(message_id__in=ids)}
