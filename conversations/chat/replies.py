"""A reply's writes once its turn opened it: its text while it streams, its end, or its loss.

A reply row is written when it opens (turns.py), at most a few times while it streams, and once more at
its end. Every write of the instance streaming it is fenced by that instance's lease, so an instance
that lost the reply (it froze past its lease) never rewrites what others were told; a reply whose
server died is stored as lost by another.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Now
from django.utils import timezone

from ..models import Message
from ..text import json_storable, text_storable
from ..usage_ledger import reply_end_write, reply_entries_write
from .reply_end import ReplyEnd


def lease_expiry() -> CombinedExpression:
    """A new lease's expiry, on the database's clock: every instance judges leases by that one clock."""
    return Now() + timedelta(seconds=settings.CHAT_REPLY_LEASE_SECONDS)


def _replies_fenced(reply_ids: list[int], streamed_by: str) -> Any:
    """The replies of these ids that `streamed_by` still holds: streaming under its own lease. Every
    write of the instance streaming a reply goes through this filter, so one that lost a reply (it froze
    past its lease and another stored the reply as lost) can never rewrite what others were told."""
    return Message.objects.filter(pk__in=reply_ids, status=Message.Status.STREAMING, streamed_by=streamed_by)


@transaction.atomic
def reply_leases_renew(*, streamed_by: str, reply_ids: list[int]) -> set[int]:
    """Extend the leases of the replies this instance's live tasks stream; return those it still holds
    (the others were stored as lost by another instance: their tasks must stop)."""
    held = list(_replies_fenced(reply_ids, streamed_by).select_for_update().values_list("pk", flat=True))
    if held:
        Message.objects.filter(pk__in=held).update(lease_expires_at=lease_expiry())
    return set(held)


def reply_flush(*, reply_id: int, content: str, streamed_by: str, reasoning: str = "") -> bool:
    """Store the text (and the reasoning, when there is some) so far of a streaming reply (a crash loses
    at most one flush interval) and extend its lease; return False when its instance no longer holds it."""
    fields = {"content": content, "lease_expires_at": lease_expiry()}
    if reasoning:
        fields["reasoning"] = reasoning
    return bool(_replies_fenced([reply_id], streamed_by).update(**fields))


def reply_finish(
    *,
    reply_id: int,
    streamed_by: str,
    content: str,
    end: ReplyEnd,
    tools: list[dict[str, Any]] | None = None,
    cost: Decimal | None = None,
    reasoning: str = "",
) -> bool:
    """Store a reply's final text (and reasoning) and how it ended (what every later reader sees), with
    the models that produced it, and its usage ledger entry in the same statement; return False, storing
    nothing, when its instance no longer holds it."""
    usage = end.usage or {}
    return bool(
        reply_end_write(
            _replies_fenced([reply_id], streamed_by),
            dict(
                lease_expires_at=None,
                content=text_storable(content),
                reasoning=text_storable(reasoning),
                reasoning_ms=end.reasoning_ms,
                status=end.status,
                finish_reason=end.finish_reason,
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
                total_tokens=usage.get("total_tokens"),
                reasoning_tokens=usage.get("reasoning_tokens"),
                cached_tokens=usage.get("cached_tokens"),
                cost=cost,
                tools=json_storable(tools or []),
                tool_calls=list(end.tool_calls),
                error_code=end.error_code,
                error=text_storable(end.error),
                served_models=list(end.served_models),
                handoff_offsets=list(end.handoff_offsets),
                finished_at=timezone.now(),
            ),
        )
    )


SERVER_LOST_ERROR = "The server writing this reply stopped; the text is kept up to what was shown."


def lapsed_reply_ids() -> list[int]:
    """The streaming replies whose lease lapsed on the database's clock: their server died mid-stream."""
    return list(Message.objects.lease_lapsed().values_list("pk", flat=True))


@transaction.atomic
def reply_lost_store(
    *, reply_id: int, shown_text: str, shown_reasoning: str = "", streamed_by: str | None = None
) -> Message | None:
    """Store a reply whose server died as interrupted (`server_lost`), keeping every character any
    client was shown: `shown_text` (what its reply log holds) when it extends the last saved text, and
    `shown_reasoning` likewise for its reasoning.

    Only a reply that is still streaming under a lapsed lease is touched, or, with `streamed_by`, one
    streamed by that (dead) instance whatever its lease. Return the stored row, or None when it was not
    lost after all (it ended, or its server renewed the lease meanwhile).
    """
    rows = (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .filter(pk=reply_id, status=Message.Status.STREAMING)
    )
    rows = rows.filter(streamed_by=streamed_by) if streamed_by is not None else rows.lease_lapsed()
    message = rows.first()
    if message is None:
        return None
    if len(shown_text) > len(message.content) and shown_text.startswith(message.content):
        message.content = text_storable(shown_text)
    if len(shown_reasoning) > len(message.reasoning) and shown_reasoning.startswith(message.reasoning):
        message.reasoning = text_storable(shown_reasoning)
    message.status, message.finish_reason = Message.Status.INTERRUPTED, "server_lost"
    message.error_code, message.error = "server_lost", SERVER_LOST_ERROR
    message.lease_expires_at, message.finished_at = None, timezone.now()
    message.save(
        update_fields=[
            "content",
            "reasoning",
            "status",
            "finish_reason",
            "error_code",
            "error",
            "lease_expires_at",
            "finished_at",
        ]
    )
    reply_entries_write([message.pk])  # its end is in the ledger too, whatever it counted
    return message
