"""Per-owner limits that hold across server instances: messages per window and open sockets.

Message rates use the `limits` library (a moving window), in Redis when REDIS_URL is set and in
process memory otherwise. Open sockets are counted in a Redis sorted set per owner whose entries
expire unless their instance renews them, so a crashed instance's sockets stop counting.

While Redis is down the limits fail open (logged): an outage of the counters must not stop every chat.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass

import limits
from django.conf import settings
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisError

from .exceptions import RateLimited
from .instance import Instance
from .redisclient import redis_client_options

logger = logging.getLogger(__name__)

# A socket entry lives this long unless its instance renews it (every heartbeat).
SOCKET_ENTRY_SECONDS = 90


@dataclass(slots=True)
class _Limiters:
    message_rate: MovingWindowRateLimiter
    local_sockets: dict[str, dict[str, float]]
    frame_rate: MovingWindowRateLimiter


_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Limiters] = weakref.WeakKeyDictionary()


def _limiters_get() -> _Limiters:
    loop = asyncio.get_running_loop()
    found = _limiters.get(loop)
    if found is None:
        if settings.REDIS_URL:
            url = settings.REDIS_URL.replace("redis://", "async+redis://", 1)
            storage = RedisStorage(
                url,
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=f"{settings.CHAT_REDIS_PREFIX}-limits",
                **redis_client_options(),  # a half-open connection fails the check instead of hanging
            )
        else:
            storage = MemoryStorage()
        found = _limiters[loop] = _Limiters(
            MovingWindowRateLimiter(storage), {}, MovingWindowRateLimiter(MemoryStorage())
        )
    return found


async def message_rate_check(*, owner_key: str, anonymous_address: str = "") -> None:
    """Count one message against the owner's CHAT_RATE_LIMIT (e.g. "20/minute"), and for an anonymous
    owner also against CHAT_ANONYMOUS_RATE_LIMIT for its client address (`anonymous_address`): a new
    browser session resets the owner's count, not the address's.

    Raise ChatError("rate_limited") with `retry_after` (seconds) when either is over its limit.
    """
    limiter = _limiters_get().message_rate
    await _rate_hit(limiter, settings.CHAT_RATE_LIMIT, "messages", owner_key, what="messages")
    if anonymous_address:
        await _rate_hit(
            limiter,
            settings.CHAT_ANONYMOUS_RATE_LIMIT,
            "anonymous-messages",
            anonymous_address,
            what="messages",
        )


async def _rate_hit(limiter: MovingWindowRateLimiter, rate: str, scope: str, key: str, *, what: str) -> None:
    """Count one hit of `key` against `rate` (empty: no limit); raise ChatError("rate_limited") with
    `retry_after` when it is over. A storage that fails counts nothing (logged)."""
    if not rate:
        return
    item = limits.parse(rate)
    try:
        if await limiter.hit(item, scope, key):
            return
        stats = await limiter.get_window_stats(item, scope, key)
    except StorageError:
        logger.warning("message rate not counted: its storage failed", exc_info=True)
        return
    retry_after = max(1, round(stats.reset_time - time.time()))
    raise RateLimited(
        f"Too many {what}: the limit is {rate}. Try again in {retry_after} s.",
        retry_after=retry_after,
    )


async def frame_rate_check(*, socket_id: str) -> None:
    """Count one frame from a socket against CHAT_SOCKET_FRAME_RATE (every frame type: a history request
    costs the server far more than its bytes). Raise ChatError("rate_limited") with `retry_after` when
    the socket is over it. Counted in this process: a socket lives on one instance."""
    await _rate_hit(
        _limiters_get().frame_rate,
        settings.CHAT_SOCKET_FRAME_RATE,
        "frames",
        socket_id,
        what="frames on this socket",
    )


def _sockets_key(owner_key: str) -> str:
    return f"{settings.CHAT_REDIS_PREFIX}:sockets:{owner_key}"


async def socket_admit(*, instance: Instance, owner_key: str, socket_id: str) -> bool:
    """Count a new socket of the owner; return False, counting nothing, when they have the maximum open."""
    limit = settings.CHAT_MAX_SOCKETS_PER_OWNER
    if not limit:
        return True
    now = time.time()
    if instance.redis is None:
        sockets = _limiters_get().local_sockets.setdefault(owner_key, {})
        if len(sockets) >= limit:
            return False
        sockets[socket_id] = now + SOCKET_ENTRY_SECONDS
        return True
    key = _sockets_key(owner_key)
    pipe = instance.redis.pipeline(transaction=True)
    pipe.zremrangebyscore(key, 0, now)
    pipe.zadd(key, {socket_id: now + SOCKET_ENTRY_SECONDS})
    pipe.zcard(key)
    pipe.expire(key, SOCKET_ENTRY_SECONDS)
    try:
        _removed, _added, count, _ = await pipe.execute()
        if count > limit:
            await instance.redis.zrem(key, socket_id)
            return False
    except (RedisError, OSError):
        logger.warning("socket admitted uncounted: Redis failed", exc_info=True)
    return True


async def socket_release(*, instance: Instance, owner_key: str, socket_id: str) -> None:
    """Stop counting a closed socket."""
    if not settings.CHAT_MAX_SOCKETS_PER_OWNER:
        return
    if instance.redis is None:
        _limiters_get().local_sockets.get(owner_key, {}).pop(socket_id, None)
        return
    try:
        await instance.redis.zrem(_sockets_key(owner_key), socket_id)
    except (RedisError, OSError):  # its entry expires unrenewed
        logger.warning("socket release not counted: Redis failed", exc_info=True)


async def sockets_renew(*, instance: Instance, sockets: dict[str, str]) -> None:
    """Renew the entries of this instance's open sockets (socket id -> owner key)."""
    if instance.redis is None or not sockets or not settings.CHAT_MAX_SOCKETS_PER_OWNER:
        return
    expiry = time.time() + SOCKET_ENTRY_SECONDS
    pipe = instance.redis.pipeline(transaction=False)
    for socket_id, owner_key in sockets.items():
        pipe.zadd(_sockets_key(owner_key), {socket_id: expiry}, xx=True)
        pipe.expire(_sockets_key(owner_key), SOCKET_ENTRY_SECONDS)
    await pipe.execute()
