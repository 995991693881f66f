"""Rates of HTTP requests that cost the server far more than their bytes ("continue this conversation"
copies a whole snapshot), counted per owner and per client address across instances.

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
from limits.strategies import MovingWindowRateLimiter

from .exceptions import RateLimited
from .owners import Owner
from .redisclient import redis_client_options

logger = logging.getLogger(__name__)


@functools.cache
def _limiter() -> MovingWindowRateLimiter:
    """This process's limiter for HTTP requests, on the storage its settings name (chosen once)."""
    storage: Storage
    if settings.REDIS_URL:
        storage = RedisStorage(
            settings.REDIS_URL,
            wrap_exceptions=True,
            key_prefix=f"{settings.CHAT_REDIS_PREFIX}-limits",
            **redis_client_options(),  # a half-open connection fails the count instead of hanging
        )
    else:
        storage = MemoryStorage()
    return MovingWindowRateLimiter(storage)


@receiver(setting_changed)
def _limiter_reset(*, setting: str, **kwargs: object) -> None:
    if setting in {"REDIS_URL", "CHAT_REDIS_PREFIX", "CHAT_REDIS_TIMEOUT"}:
        _limiter.cache_clear()  # the tests point it elsewhere


def _rate_hit(rate: str, scope: str, key: str, *, message: str) -> None:
    """Count one request of `key` against `rate` (empty: no limit). Raise RateLimited saying `message`
    with `retry_after` (seconds) when it is over; a storage that fails counts nothing (logged)."""
    if not rate:
        return
    item = limits.parse(rate)
    try:
        if _limiter().hit(item, scope, key):
            return
        stats = _limiter().get_window_stats(item, scope, key)
    except StorageError:
        logger.warning("request rate not counted: its storage failed", exc_info=True)
        return
    retry_after = max(1, round(stats.reset_time - time.time()))
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
