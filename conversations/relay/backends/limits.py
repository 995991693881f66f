"""Limits: messages per window and open sockets per owner, across instances; frames per socket, here.

Rates use the `limits` library (a moving window), in Redis when REDIS_URL is set and in process memory
otherwise. Open sockets are counted per owner, in Redis or in memory. While Redis is down the limits
fail open (logged): an outage of the counters must not stop every chat.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod

import limits
import redis.asyncio as redis_asyncio
from django.conf import settings
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisError

from ...exceptions import RateLimited
from ...redisclient import redis_client_options

logger = logging.getLogger(__name__)

# A socket entry lives this long unless its instance renews it (every heartbeat).
SOCKET_ENTRY_SECONDS = 90


def redis_rate_storage() -> Storage:
    """Message rates counted in Redis, so they hold across instances."""
    return RedisStorage(
        settings.REDIS_URL.replace("redis://", "async+redis://", 1),
        implementation="redispy",
        wrap_exceptions=True,
        key_prefix=f"{settings.CHAT_REDIS_PREFIX}-limits",
        **redis_client_options(),  # a half-open connection fails the check instead of hanging
    )


class RateLimits:
    """This process's rate limiters: messages per owner (shared storage) and frames per socket (here)."""

    def __init__(self, storage: Storage) -> None:
        self.message_rate = MovingWindowRateLimiter(storage)
        # Counted in this process: a socket lives on one instance.
        self.frame_rate = MovingWindowRateLimiter(MemoryStorage())

    async def message_check(self, *, owner_key: str, anonymous_address: str = "") -> None:
        """Count one message against the owner's CHAT_RATE_LIMIT (e.g. "20/minute"), and for an
        anonymous owner also against CHAT_ANONYMOUS_RATE_LIMIT for its client address
        (`anonymous_address`): a new browser session resets the owner's count, not the address's.

        Raise RateLimited with `retry_after` (seconds) when either is over its limit.
        """
        await _rate_hit(self.message_rate, settings.CHAT_RATE_LIMIT, "messages", owner_key, what="messages")
        if anonymous_address:
            await _rate_hit(
                self.message_rate,
                settings.CHAT_ANONYMOUS_RATE_LIMIT,
                "anonymous-messages",
                anonymous_address,
                what="messages",
            )

    async def frame_check(self, *, socket_id: str) -> None:
        """Count one frame from a socket against CHAT_SOCKET_FRAME_RATE (every frame type: a history
        request costs the server far more than its bytes). Raise RateLimited with `retry_after` when the
        socket is over it."""
        await _rate_hit(
            self.frame_rate,
            settings.CHAT_SOCKET_FRAME_RATE,
            "frames",
            socket_id,
            what="frames on this socket",
        )


async def _rate_hit(limiter: MovingWindowRateLimiter, rate: str, scope: str, key: str, *, what: str) -> None:
    """Count one hit of `key` against `rate` (empty: no limit); raise RateLimited with
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


def _sockets_key(owner_key: str) -> str:
    return f"{settings.CHAT_REDIS_PREFIX}:sockets:{owner_key}"


class SocketCounter(ABC):
    """Counts each owner's open sockets, on every instance, up to CHAT_MAX_SOCKETS_PER_OWNER (a backend
    lacking a method cannot be constructed)."""

    @abstractmethod
    async def admit(self, *, owner_key: str, socket_id: str) -> bool:
        """Count a new socket; return False, counting nothing, when the owner has the maximum open."""

    @abstractmethod
    async def release(self, *, owner_key: str, socket_id: str) -> None: ...

    @abstractmethod
    async def renew(self, sockets: dict[str, str]) -> None:
        """Renew the entries of this instance's open sockets (socket id -> owner key)."""


class LocalSocketCounter(SocketCounter):
    """One process: the open sockets are counted in memory."""

    def __init__(self) -> None:
        self._sockets: dict[str, set[str]] = {}

    async def admit(self, *, owner_key: str, socket_id: str) -> bool:
        limit = settings.CHAT_MAX_SOCKETS_PER_OWNER
        if not limit:
            return True
        sockets = self._sockets.setdefault(owner_key, set())
        if len(sockets) >= limit:
            return False
        sockets.add(socket_id)
        return True

    async def release(self, *, owner_key: str, socket_id: str) -> None:
        sockets = self._sockets.get(owner_key)
        if sockets is not None:
            sockets.discard(socket_id)
            if not sockets:
                del self._sockets[owner_key]

    async def renew(self, sockets: dict[str, str]) -> None:
        pass  # they live as long as this process


class RedisSocketCounter(SocketCounter):
    """A sorted set per owner whose entries expire unless their instance renews them, so a crashed
    instance's sockets stop counting. While Redis is down, sockets are admitted uncounted (logged)."""

    def __init__(self, client: redis_asyncio.Redis) -> None:
        self.client = client

    async def admit(self, *, owner_key: str, socket_id: str) -> bool:
        limit = settings.CHAT_MAX_SOCKETS_PER_OWNER
        if not limit:
            return True
        now = time.time()
        key = _sockets_key(owner_key)
        pipe = self.client.pipeline(transaction=True)
        pipe.zremrangebyscore(key, 0, now)
        pipe.zadd(key, {socket_id: now + SOCKET_ENTRY_SECONDS})
        pipe.zcard(key)
        pipe.expire(key, SOCKET_ENTRY_SECONDS)
        try:
            _removed, _added, count, _ = await pipe.execute()
            if count > limit:
                await self.client.zrem(key, socket_id)
                return False
        except (RedisError, OSError):
            logger.warning("socket admitted uncounted: Redis failed", exc_info=True)
        return True

    async def release(self, *, owner_key: str, socket_id: str) -> None:
        if not settings.CHAT_MAX_SOCKETS_PER_OWNER:
            return
        try:
            await self.client.zrem(_sockets_key(owner_key), socket_id)
        except (RedisError, OSError):  # its entry expires unrenewed
            logger.warning("socket release not counted: Redis failed", exc_info=True)

    async def renew(self, sockets: dict[str, str]) -> None:
        if not sockets or not settings.CHAT_MAX_SOCKETS_PER_OWNER:
            return
        expiry = time.time() + SOCKET_ENTRY_SECONDS
        by_owner: dict[str, dict[str, float]] = {}
        for socket_id, owner_key in sockets.items():
            by_owner.setdefault(owner_key, {})[socket_id] = expiry
        # Two commands per owner, not per socket: a tab-heavy instance renews in few round trips.
        pipe = self.client.pipeline(transaction=False)
        for owner_key, entries in by_owner.items():
            pipe.zadd(_sockets_key(owner_key), entries, xx=True)
            pipe.expire(_sockets_key(owner_key), SOCKET_ENTRY_SECONDS)
        await pipe.execute()
