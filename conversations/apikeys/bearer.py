"""A request's `Authorization: Bearer <key>` turned into the key's row and user, read from the database
on every request: a key revoked or expired, or a user made inactive, is refused at once on every
instance, with no cache to outlive it. The key is found by its prefix and hash (no comparison of
secrets), and a malformed one costs no query."""

from __future__ import annotations

from datetime import timedelta

import limits
from django.conf import settings
from django.utils import timezone

from ..exceptions import InvalidApiKey, RateLimited
from ..models import ApiKey
from ..models.api_keys import API_KEY_SHOWN_CHARS
from ..request_limits import rate_retry_after
from .keys import key_hash, key_well_formed

# last_used_at is written when it is older than this: a busy key costs one write a minute, not one a request.
LAST_USED_EVERY = timedelta(minutes=1)
# A longer Authorization header holds no key of ours: refused before it is parsed.
HEADER_MAX_CHARS = 512
MISSING = "No API key: send yours as Authorization: Bearer <key>."
INCORRECT = "Incorrect API key provided."


def api_key_authenticate(authorization: str) -> ApiKey:
    """The key an Authorization header names, with its user (`select_related`); raise InvalidApiKey for
    a missing, malformed, unknown, revoked or expired key, or one whose user is inactive."""
    if not authorization.strip():
        raise InvalidApiKey(MISSING)
    if len(authorization) > HEADER_MAX_CHARS:
        raise InvalidApiKey(INCORRECT)
    scheme, _, key = authorization.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key_well_formed(key):
        raise InvalidApiKey(INCORRECT)
    row = (
        ApiKey.objects.select_related("user")
        .filter(prefix=key[:API_KEY_SHOWN_CHARS], key_hash=key_hash(key))
        .first()
    )
    if row is None or not row.user.is_active:
        raise InvalidApiKey(INCORRECT)
    if row.revoked:
        raise InvalidApiKey("This API key has been revoked.")
    if row.expired:
        raise InvalidApiKey("This API key has expired.")
    _last_used_note(row)
    return row


def api_key_rate_check(row: ApiKey) -> None:
    """Count one request against the key's own rate, or CHAT_API_KEY_RATE_LIMIT (0: none); raise
    RateLimited (with retry_after) when it is over."""
    per_minute = row.rate_limit_per_minute
    if per_minute is None:
        per_minute = settings.CHAT_API_KEY_RATE_LIMIT
    if not per_minute:
        return
    retry_after = rate_retry_after(limits.RateLimitItemPerMinute(per_minute), "api-keys", str(row.pk))
    if retry_after:
        raise RateLimited(
            f"This API key may make {per_minute} requests a minute; try again in {retry_after} s.",
            retry_after=retry_after,
        )


def _last_used_note(row: ApiKey) -> None:
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        # Conditional, so instances that see the same stale time write it once between them.
        ApiKey.objects.filter(pk=row.pk, last_used_at=row.last_used_at).update(last_used_at=now)
        row.last_used_at = now
