"""Rates of HTTP requests that cost the server far more than their bytes ("continue this conversation"
copies a whole snapshot, an upload is decoded and stored), counted per owner and per client address
across instances.

As the relay counts messages (relay/limits.py): the `limits` library's moving window, in Redis when
REDIS_URL is set and in process memory otherwise, under the same key prefix; while Redis is down the
counts fail open (logged), so an outage of the counters never stops the pages.
"""

from __future__ import annotations

import functools
import logging
import time

import limits
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter, RateLimiter

from .exceptions import RateLimited
from .owners import Owner
from .redisclient import redis_client_options

logger = logging.getLogger(__name__)


@functools.cache
def _storage() -> Storage:
    """This process's storage for HTTP request counts, the one its settings name (chosen once)."""
    if not settings.REDIS_URL:
        return MemoryStorage()
    return RedisStorage(
        settings.REDIS_URL,
        wrap_exceptions=True,
        key_prefix=f"{settings.CHAT_REDIS_PREFIX}-limits",  # beside the message limits' keys
        **redis_client_options(),  # a half-open connection fails the count instead of hanging
    )


@receiver(setting_changed)
def _storage_reset_for_testing(*, setting: str, **kwargs: object) -> None:
    """A test that points REDIS_URL or its prefix elsewhere makes the storage anew."""
    assert settings.TEST_SUITE
    if setting in {"REDIS_URL", "CHAT_REDIS_PREFIX", "CHAT_REDIS_TIMEOUT"}:
        _storage.cache_clear()


def rate_retry_after(
    item: limits.RateLimitItem,
    scope: str,
    key: str,
    *,
    cost: int = 1,
    strategy: type[RateLimiter] = MovingWindowRateLimiter,
) -> int:
    """Count `cost` against `item` for `key`; return 0 when it fits, else the seconds until it may.
    Nothing is counted when it does not fit, nor when the storage fails (logged)."""
    limiter = strategy(_storage())
    try:
        if limiter.hit(item, scope, key, cost=cost):
            return 0
        stats = limiter.get_window_stats(item, scope, key)
    except StorageError:
        logger.warning("request not counted: the limits' storage failed", exc_info=True)
        return 0
    return max(1, round(stats.reset_time - time.time()))


def _rate_hit(rate: str, scope: str, key: str, *, message: str) -> None:
    """Count one request of `key` against `rate` (empty: no limit). Raise RateLimited saying `message`
    with `retry_after` (seconds) when it is over."""
    if not rate:
        return
    retry_after = rate_retry_after(limits.parse(rate), scope, key)
    if retry_after:
        minutes = -(-retry_after // 60)
        raise RateLimited(f"{message} Try again in {minutes} min.", retry_after=retry_after)


def share_continue_address_check(*, address: str) -> None:
    """Count an anonymous viewer's "continue this conversation" against
    CHAT_ANONYMOUS_SHARE_CONTINUE_RATE_LIMIT for its client address: a post without a cookie is a new
    viewer each time, so the address is what is counted. Raise RateLimited when it is over."""
    _rate_hit(
        settings.CHAT_ANONYMOUS_SHARE_CONTINUE_RATE_LIMIT,
        "anonymous-share-continues",
        address,
        message="You have continued too many shared chats from this network.",
    )


def share_continue_viewer_check(*, owner: Owner) -> None:
    """Count a viewer's "continue this conversation" against CHAT_SHARE_CONTINUE_RATE_LIMIT. Raise
    RateLimited when it is over."""
    _rate_hit(
        settings.CHAT_SHARE_CONTINUE_RATE_LIMIT,
        "share-continues",
        owner.key,
        message="You have continued too many shared chats.",
    )


def signup_address_check(*, address: str) -> None:
    """Count a sign-up form posted from a client address against CHAT_SIGNUP_RATE_LIMIT (each checks a
    password and may make an account). Raise RateLimited when it is over."""
    _rate_hit(
        settings.CHAT_SIGNUP_RATE_LIMIT,
        "signups",
        address,
        message="Too many sign-ups from this network.",
    )
