"""How much a client may store: the limits an upload passes before attachments.attachment_store keeps it.

- Per client address, for anonymous owners (a new browser session is a new owner, never a new address):
  uploads per window (CHAT_ANONYMOUS_UPLOAD_RATE, counted before the file is decoded) and bytes stored
  per day (CHAT_ANONYMOUS_UPLOAD_BYTES_PER_DAY). Counted with the `limits` library, in Redis when
  REDIS_URL is set (every instance counts together) and in process memory otherwise; while Redis is down
  they fail open (logged), as the message limits do.
- Per owner: the bytes of all their attachments (CHAT_ATTACHMENT_QUOTA_BYTES).
- For the whole server: the bytes of all uploads no message has named yet (CHAT_UNSENT_UPLOADS_MAX_BYTES),
  which `attachments_cleanup` removes after CHAT_ATTACHMENT_UNSENT_HOURS.

Bytes are what is kept: the file, plus its stored text (a text file's text, a PDF's text layer). The
owner's quota and the server's budget are checked in the transaction that inserts the row, under
Postgres advisory transaction locks, so concurrent uploads can never pass them together.
"""

from __future__ import annotations

from datetime import timedelta

import limits
from django.conf import settings
from django.db import connection
from django.db.models import Min
from django.utils import timezone
from limits.strategies import SlidingWindowCounterRateLimiter

from ..exceptions import AttachmentQuotaExceeded, AttachmentRateLimited, AttachmentStorageFull
from ..models import Attachment
from ..request_limits import rate_retry_after

# The first key of the advisory locks taken here (Postgres' two-key form): the owner's quota is locked
# per owner (the second key a hash of the owner key; a collision only makes two owners wait in turn),
# the server's budget once. Always in this order, owner first, so two uploads never wait on each other.
OWNER_QUOTA_LOCK = 0x75710001
UNSENT_BUDGET_LOCK = 0x75710002
STORAGE_FULL_RETRY_MIN = 60  # seconds


def text_bytes(text: str) -> int:
    """The bytes `text` takes stored (UTF-8)."""
    return len(text.encode("utf-8", "surrogatepass"))


def upload_rate_check(*, anonymous_address: str) -> None:
    """Count one upload from an anonymous owner's client address against CHAT_ANONYMOUS_UPLOAD_RATE
    (nothing for a signed-in owner: `anonymous_address` is ""). Raise AttachmentRateLimited with
    `retry_after` when the address is over it."""
    rate = settings.CHAT_ANONYMOUS_UPLOAD_RATE
    if not (anonymous_address and rate):
        return
    retry_after = rate_retry_after(limits.parse(rate), "uploads", anonymous_address)
    if retry_after:
        raise AttachmentRateLimited(
            f"Too many uploads from your address: the limit is {rate}. Try again in {retry_after} s.",
            retry_after=retry_after,
        )


def upload_bytes_check(*, anonymous_address: str, stored_bytes: int) -> None:
    """Count what an anonymous owner's upload keeps against its client address's
    CHAT_ANONYMOUS_UPLOAD_BYTES_PER_DAY (a sliding day). Raise AttachmentRateLimited with `retry_after`,
    counting nothing, when it would pass it."""
    allowance = settings.CHAT_ANONYMOUS_UPLOAD_BYTES_PER_DAY
    if not (anonymous_address and allowance):
        return
    item = limits.RateLimitItemPerDay(allowance)
    retry_after = rate_retry_after(
        item, "upload-bytes", anonymous_address, cost=stored_bytes, strategy=SlidingWindowCounterRateLimiter
    )
    if retry_after:
        raise AttachmentRateLimited(
            f"Your address has uploaded its {allowance:,} bytes for the day; sign in, or try again in"
            f" {retry_after} s.",
            retry_after=retry_after,
        )


def advisory_lock(space: int, key: str) -> None:
    """Wait for the transaction-scoped advisory lock (`space`, hash of `key`)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [space, key])


def stored_bytes_reserve(*, owner_key: str, stored_bytes: int) -> None:
    """Check, in the transaction about to insert an upload's row, that the owner's attachments and the
    server's unsent uploads have room for `stored_bytes` more; the locks taken hold until it commits, so
    no other upload is checked against the same room meanwhile.

    Raise AttachmentQuotaExceeded over the owner's CHAT_ATTACHMENT_QUOTA_BYTES, AttachmentStorageFull
    (with `retry_after`: when the oldest unsent upload is swept) over CHAT_UNSENT_UPLOADS_MAX_BYTES.
    """
    assert connection.in_atomic_block, "the locks must last until the row is inserted"
    advisory_lock(OWNER_QUOTA_LOCK, owner_key)
    if Attachment.objects.filter(owner_key=owner_key).bytes_stored() + stored_bytes > (
        settings.CHAT_ATTACHMENT_QUOTA_BYTES
    ):
        raise AttachmentQuotaExceeded()
    budget = settings.CHAT_UNSENT_UPLOADS_MAX_BYTES
    if not budget:
        return
    advisory_lock(UNSENT_BUDGET_LOCK, "")
    unsent = Attachment.objects.unsent()
    if unsent.bytes_stored() + stored_bytes > budget:
        oldest = unsent.aggregate(oldest=Min("created_at"))["oldest"] or timezone.now()
        swept = oldest + timedelta(hours=settings.CHAT_ATTACHMENT_UNSENT_HOURS) - timezone.now()
        # A sweep that is late (cron not run yet) still leaves a minute between tries.
        raise AttachmentStorageFull(retry_after=max(STORAGE_FULL_RETRY_MIN, round(swept.total_seconds())))
