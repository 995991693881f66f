"""This server process on its event loop: its channel, its Redis client, and its housekeeping tasks.

Every process has a channel-layer channel of its own. Its name marks the replies it streams (their
lease owner), and other instances send it `reply.stop` there. A heartbeat renews the leases of its
replies and stores as interrupted the replies whose server died. Under Daphne, a SIGTERM first lets
the shutdown hooks run (replies in flight get a grace period), then the reactor stops.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis_asyncio
from channels.layers import get_channel_layer
from django.conf import settings

from .replylog import ReplyLogWriter

logger = logging.getLogger(__name__)

MessageHandler = Callable[[dict[str, Any]], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]

# Filled by the relay at import: what to do with a message to this process, each heartbeat, at shutdown.
message_handlers: dict[str, MessageHandler] = {}
heartbeat_hooks: list[Hook] = []
shutdown_hooks: list[Hook] = []


@dataclass(slots=True)
class Instance:
    """The per-process state shared by every socket and reply on one event loop."""

    channel: str
    redis: redis_asyncio.Redis | None
    log_writer: ReplyLogWriter | None
    draining: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


_instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[Instance]] = (
    weakref.WeakKeyDictionary()
)


async def instance_get() -> Instance:
    """Return this event loop's instance, starting it on first use."""
    loop = asyncio.get_running_loop()
    starting = _instances.get(loop)
    if starting is None:
        starting = _instances[loop] = loop.create_task(_instance_start(), name="instance-start")
    return await asyncio.shield(starting)


async def _instance_start() -> Instance:
    layer = get_channel_layer()
    # The default prefix matters: channels_redis serves every process-specific channel of a layer from
    # one receive loop keyed by the prefix, so a channel with a prefix of its own would hold that loop
    # on its own queue and starve the consumers' channels (their group events) for seconds at a time.
    channel = await layer.new_channel()
    client = redis_asyncio.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None
    instance = Instance(
        channel=channel, redis=client, log_writer=ReplyLogWriter(client) if client is not None else None
    )
    instance.tasks = [
        asyncio.create_task(_receive_loop(layer, channel), name="instance-receive"),
        asyncio.create_task(_heartbeat_loop(), name="instance-heartbeat"),
    ]
    _shutdown_trigger_install(instance)
    logger.info("instance started", extra={"channel": channel})
    return instance


async def instance_close() -> None:
    """Stop this loop's instance (tests; the process exit does it otherwise)."""
    starting = _instances.pop(asyncio.get_running_loop(), None)
    if starting is None:
        return
    instance = await starting
    for task in instance.tasks:
        task.cancel()
    await asyncio.gather(*instance.tasks, return_exceptions=True)
    if instance.log_writer is not None:
        await instance.log_writer.close()
    if instance.redis is not None:
        await instance.redis.aclose()


async def _receive_loop(layer: Any, channel: str) -> None:
    """Handle messages sent to this process; a Redis outage only pauses it."""
    delay = 0.5
    while True:
        try:
            message = await layer.receive(channel)
            delay = 0.5
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("process channel receive failed; retrying", exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)
            continue
        handler = message_handlers.get(message.get("type", ""))
        if handler is not None:
            try:
                await handler(message)
            except Exception:
                logger.exception("process message handler failed", extra={"type": message.get("type")})


async def _heartbeat_loop() -> None:
    """Run the heartbeat hooks now (crash recovery at start) and every third of the lease."""
    while True:
        for hook in heartbeat_hooks:
            try:
                await hook()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("heartbeat hook failed", exc_info=True)
        await asyncio.sleep(settings.CHAT_REPLY_LEASE_SECONDS / 3)


def _shutdown_trigger_install(instance: Instance) -> None:
    """Under Daphne (Twisted), make SIGTERM wait for the shutdown hooks before the reactor stops."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    if not reactor.running:
        return

    def before_shutdown() -> defer.Deferred[Any]:
        instance.draining = True
        hooks = asyncio.gather(*(hook() for hook in shutdown_hooks), return_exceptions=True)
        return defer.Deferred.fromFuture(asyncio.ensure_future(hooks))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
