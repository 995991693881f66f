"""A user's API keys: made (the key itself is returned once and never stored: its SHA-256 and its first
characters are), listed, and revoked by their user, an operator or a command."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..exceptions import InvalidApiKeyRequest, NotFound, TooManyApiKeys
from ..models import ApiKey
from ..models.api_keys import API_KEY_PREFIX, API_KEY_SHOWN_CHARS
from ..text import text_storable

SECRET_BYTES = 32  # token_urlsafe(32): 43 characters, 256 bits
KEY_RE = re.compile(rf"{API_KEY_PREFIX}[A-Za-z0-9_-]{{43}}")
NAME_MAX_CHARS = 100  # ApiKey.name's column
SCOPE_MAX_ENTRIES = 50
SCOPE_ENTRY_MAX_CHARS = 200  # ChatModel.name's column; agent slugs are shorter
DAYS_MAX = 3650  # an expiry asked in days, when the operator sets no maximum
PREFIX_ATTEMPTS = 3  # a new key's first characters meet another's about once in 2**48 keys


def key_hash(key: str) -> str:
    """What a key's row keeps of it: one SHA-256 (the key is 256 random bits, so nothing slower is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_well_formed(key: str) -> bool:
    return KEY_RE.fullmatch(key) is not None


def scope_errors(scope: object) -> str:
    """What is wrong with a scope (a list of agent slugs and model ids), or ''."""
    if not isinstance(scope, list) or len(scope) > SCOPE_MAX_ENTRIES:
        return (
            f"a list of at most {SCOPE_MAX_ENTRIES} agent slugs and model ids; empty: all the user may use."
        )
    if not all(isinstance(entry, str) and 0 < len(entry) <= SCOPE_ENTRY_MAX_CHARS for entry in scope):
        return f"each entry an agent slug or a model id of at most {SCOPE_ENTRY_MAX_CHARS} characters."
    return ""


def expiry_from_days(days: object) -> datetime | None:
    """When a key asked for `days` (None: no expiry of its own) expires; raise InvalidApiKeyRequest for
    what is not a whole number of days within the operator's maximum."""
    if days is None:
        return None
    limit = settings.CHAT_API_KEY_MAX_DAYS or DAYS_MAX
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= limit:
        raise InvalidApiKeyRequest(f"expires_days: a whole number of days from 1 to {limit}.")
    return timezone.now() + timedelta(days=days)


def expiry_within_maximum(expires_at: datetime | None) -> datetime | None:
    """The expiry a new key gets: the one asked (in the future), within CHAT_API_KEY_MAX_DAYS; a key asked
    without one gets the maximum when there is one."""
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise InvalidApiKeyRequest("expires_at: a time in the future.")
    if not settings.CHAT_API_KEY_MAX_DAYS:
        return expires_at
    latest = now + timedelta(days=settings.CHAT_API_KEY_MAX_DAYS)
    if expires_at is not None and expires_at > latest:
        raise InvalidApiKeyRequest(
            f"expires_at: a key lives at most {settings.CHAT_API_KEY_MAX_DAYS} days on this server."
        )
    return expires_at or latest


def keys_held(user_id: int) -> QuerySet[ApiKey]:
    """The user's keys not revoked. An expired one counts until it is revoked, so the keys a user holds,
    and the list the page shows, stay within the cap however many keys expire."""
    return ApiKey.objects.filter(user_id=user_id, revoked_at__isnull=True)


@transaction.atomic
def api_key_create(
    user_id: int,
    *,
    name: str = "",
    expires_at: datetime | None = None,
    scope: list[str] | None = None,
    rate_limit_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    """Make a key for the user: its row and the key itself, which nothing can show again. Raise
    TooManyApiKeys past CHAT_API_KEYS_PER_USER, InvalidApiKeyRequest for a name, expiry or scope that
    breaks a rule."""
    if not isinstance(name, str) or len(name) > NAME_MAX_CHARS:
        raise InvalidApiKeyRequest(f"name: a text of at most {NAME_MAX_CHARS} characters.")
    scope = [] if scope is None else scope
    if problem := scope_errors(scope):
        raise InvalidApiKeyRequest(f"scope: {problem}")
    expires_at = expiry_within_maximum(expires_at)
    # The user's row is locked so two requests at once cannot both take the last place.
    get_user_model()._default_manager.select_for_update().filter(pk=user_id).exists()
    limit = settings.CHAT_API_KEYS_PER_USER
    if keys_held(user_id).count() >= limit:
        raise TooManyApiKeys(f"You may keep {limit} API keys; revoke one to make another.")
    for attempt in range(1, PREFIX_ATTEMPTS + 1):
        key = API_KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        row = ApiKey(
            user_id=user_id,
            name=text_storable(name.strip()),
            prefix=key[:API_KEY_SHOWN_CHARS],
            key_hash=key_hash(key),
            scope=scope,
            expires_at=expires_at,
            rate_limit_per_minute=rate_limit_per_minute,
        )
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:
            if attempt == PREFIX_ATTEMPTS:
                raise
        else:
            return row, key
    raise AssertionError("the last attempt returns or raises")


def api_key_as_dict(row: ApiKey) -> dict[str, Any]:
    """A key as its user sees it: never the key, nor its hash."""
    return {
        "id": row.pk,
        "name": row.name,
        "prefix": row.prefix,
        "scope": row.scope,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
        "expired": row.expired,
    }


def api_keys_listed(user_id: int) -> list[dict[str, Any]]:
    """The user's keys that are not revoked, the newest first (an expired one too, marked): at most
    CHAT_API_KEYS_PER_USER."""
    return [api_key_as_dict(row) for row in keys_held(user_id)]


def api_key_revoke(user_id: int, key_id: int) -> None:
    """Revoke one of the user's keys; raise NotFound for any key that is not theirs or is revoked."""
    if not ApiKey.objects.filter(user_id=user_id, pk=key_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    ):
        raise NotFound()


def api_key_find(key_or_prefix: str) -> ApiKey | None:
    """The key a whole key or its shown prefix (as the page and the admin show it, `…` or not) names."""
    text = key_or_prefix.strip().rstrip("…")
    if key_well_formed(text):
        return ApiKey.objects.filter(prefix=text[:API_KEY_SHOWN_CHARS], key_hash=key_hash(text)).first()
    if len(text) == API_KEY_SHOWN_CHARS and text.startswith(API_KEY_PREFIX):
        return ApiKey.objects.filter(prefix=text).first()
    return None


def api_keys_revoke(queryset: QuerySet[ApiKey]) -> int:
    """Revoke the keys of `queryset` not revoked yet; how many were."""
    return queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
