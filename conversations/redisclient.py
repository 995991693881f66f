"""How this process talks to Redis: commands time out, subscriptions wait, and dead peers are noticed.

Without a socket timeout a command on a half-open connection (Redis gone without a FIN: a crashed host,
a dropped NAT entry) would wait forever. A subscriber is the opposite case: it may rightly hear nothing
for hours, and redis-py applies the socket timeout to its reads too, so under it an idle subscription
would be dropped and resubscribed every few seconds, losing what was published in between. So
subscriptions get connections without the timeout, and TCP keepalive finds a dead peer under them.
"""

from __future__ import annotations

import socket
from typing import Any

import redis.asyncio as redis_asyncio
from django.conf import settings
from redis.asyncio.client import PubSub

# A connection idle this long is pinged before a command uses it.
HEALTH_CHECK_SECONDS = 30
# Longest wait to connect, whatever CHAT_REDIS_TIMEOUT is.
CONNECT_TIMEOUT_SECONDS = 5
# TCP keepalive: probe a connection idle for 30 s every 10 s, drop it after 3 unanswered probes, so a
# dead peer under an idle subscription is found in about a minute (names missing on some systems).
_KEEPALIVE_SPEC = (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3))
KEEPALIVE_OPTIONS = {getattr(socket, name): value for name, value in _KEEPALIVE_SPEC if hasattr(socket, name)}


def redis_client_options() -> dict[str, Any]:
    """Return the keyword arguments for a Redis client whose commands time out (redis-py, `limits`).

    A reply may take up to CHAT_REDIS_TIMEOUT seconds, which must outlast the reply log's blocking
    read (XREAD BLOCK 2000 ms, `streaming.FOLLOW_CHECK_MS`).
    """
    return {
        "socket_timeout": settings.CHAT_REDIS_TIMEOUT,
        "socket_connect_timeout": min(settings.CHAT_REDIS_TIMEOUT, CONNECT_TIMEOUT_SECONDS),
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "socket_keepalive": True,
        "socket_keepalive_options": KEEPALIVE_OPTIONS,
    }


class CommandTimeoutRedis(redis_asyncio.Redis):
    """A client whose commands time out and whose subscriptions (`pubsub()`) wait as long as it takes."""

    _subscriber_pool: redis_asyncio.ConnectionPool | None = None

    def pubsub(self, **kwargs: Any) -> PubSub:
        """Return a PubSub on a pool of its own: the same server and keepalive, no read timeout."""
        if self._subscriber_pool is None:
            pool = self.connection_pool
            self._subscriber_pool = pool.__class__(
                connection_class=pool.connection_class, **{**pool.connection_kwargs, "socket_timeout": None}
            )
        return PubSub(self._subscriber_pool, **kwargs)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self._subscriber_pool is not None:
            await self._subscriber_pool.disconnect()


def redis_client(url: str) -> CommandTimeoutRedis:
    """Return a client of the Redis at `url` with redis_client_options() (not connected yet)."""
    return CommandTimeoutRedis.from_url(url, **redis_client_options())
