"""An owner's usage limits kept in the database: tokens per UTC day, and replies streaming at once.

Tokens count as the usage ledger holds them (as the upstream reported them, else as estimated from the
text), and for replies still streaming, as estimated from their text so far. (Message rates and open
sockets are counted in Redis or in memory: relay/limits.py.)
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Sum
from django.db.models.functions import Length
from django.utils import timezone

from ..exceptions import QuotaExceeded, TooManyReplies
from ..models import Message, UsageEntry, UserQuota
from ..usage_ledger import tokens_estimate


def usage_estimate(*, prompt: list[dict[str, str]], reply: str) -> dict[str, int]:
    """The usage of a reply that ended without the upstream's count: its prompt and its text, estimated."""
    prompt_tokens = sum(tokens_estimate(len(message["content"])) for message in prompt)
    completion_tokens = tokens_estimate(len(reply))
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def daily_tokens_used(*, owner_key: str) -> int:
    """Tokens the owner used since midnight UTC: every billed call's in the usage ledger (counted or
    estimated; deleting a conversation takes none back), and for replies still streaming, their text so
    far, estimated."""
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    ended = UsageEntry.objects.filter(owner_key=owner_key, created_at__gte=midnight)
    used = ended.aggregate(total=Sum("total_tokens"))["total"] or 0
    streaming = (
        Message.objects.streaming()
        .filter(conversation__owner_key=owner_key)
        .aggregate(chars=Sum(Length("content")))["chars"]
        or 0
    )
    return used + tokens_estimate(streaming)


def replies_in_flight_check(*, owner_key: str, adding: int = 0) -> None:
    """Raise TooManyReplies when the owner has CHAT_MAX_REPLIES_PER_OWNER replies streaming (in any
    conversation, on any instance), counting `adding` more about to open (earlier turns of a batch)."""
    limit = settings.CHAT_MAX_REPLIES_PER_OWNER
    if not limit:
        return
    if adding >= limit or (
        Message.objects.streaming().filter(conversation__owner_key=owner_key).count() + adding >= limit
    ):
        raise TooManyReplies(f"At most {limit} replies at once; wait for one to end or stop it.")


def daily_quota_for(*, owner_key: str) -> int:
    """The owner's daily token quota: a user's own (admin), else CHAT_DAILY_TOKEN_QUOTA; 0 is none."""
    if owner_key.startswith("u:"):
        own = (
            UserQuota.objects.filter(user_id=int(owner_key[2:]))
            .values_list("daily_tokens", flat=True)
            .first()
        )
        if own is not None:
            return own
    return settings.CHAT_DAILY_TOKEN_QUOTA


def daily_quota_check(*, owner_key: str) -> None:
    """Raise QuotaExceeded when the owner used their daily token quota today."""
    quota = daily_quota_for(owner_key=owner_key)
    if not quota:
        return
    used = daily_tokens_used(owner_key=owner_key)
    if used >= quota:
        now = timezone.now()
        tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        raise QuotaExceeded(
            f"The daily quota of {quota} tokens is used up ({used}); it renews at midnight UTC.",
            retry_after=int((tomorrow - now).total_seconds()) + 1,
        )
