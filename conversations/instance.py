"""This server process on its event loop: its id, its Redis client, its events and its housekeeping.

Instances tell each other two things: "a reply started in this conversation" (so their sockets on it
follow the reply's log) and "stop this reply" (for the instance streaming it). Both go over one Redis
pub/sub channel that every instance listens to: one message per event, whatever the number of sockets,
and no per-socket queue that can fill up or lose a message when its socket closes (as channels_redis
group sends did under load). Without Redis there is one process, and events go straight to its handlers.

A heartbeat renews the leases of this instance's replies (the id marks them) and stores as interrupted
the replies whose server died. Under Daphne, a SIGTERM first lets the shutdown hooks run (replies in
flight get a grace period), then the reactor stops.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as redis_asyncio
from django.conf import settings
from redis.exceptions import RedisError

from .redisclient import redis_client
from .replylog import ReplyLogWriter

logger = logging.getLogger(__name__)


EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]

# Filled by the relay at import: what to do with each event, after the events were cut off for a
# while (a Redis outage), each heartbeat, and at shutdown.
event_handlers: dict[str, EventHandler] = {}
resubscribed_hooks: list[Hook] = []
heartbeat_hooks: list[Hook] = []
shutdown_hooks: list[Hook] = []

# False while this process's event subscription is down (readiness reports it).
events_listening = True


@dataclass(slots=True)
class Instance:
    """The per-process state shared by every socket and reply on one event loop."""

    instance_id: str
    redis: redis_asyncio.Redis | None
    log_writer: ReplyLogWriter | None
    draining: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def events_channel() -> str:
    """The deployment's pub/sub channel: its prefix and its database number (channels span databases)."""
    database = redis_asyncio.connection.parse_url(settings.REDIS_URL).get("db", 0)
    return f"{settings.CHAT_REDIS_PREFIX}:events:{database}"


# How long closing an instance may wait for each of its parts.
CLOSE_SECONDS = 5.0

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
    client = redis_client(settings.REDIS_URL) if settings.REDIS_URL else None
    instance = Instance(
        instance_id=uuid.uuid4().hex,
        redis=client,
        log_writer=ReplyLogWriter(client) if client is not None else None,
    )
    subscribed = asyncio.Event()
    instance.tasks = [asyncio.create_task(_heartbeat_loop(), name="instance-heartbeat")]
    if client is not None:
        instance.tasks.append(asyncio.create_task(_listen_loop(client, subscribed), name="instance-events"))
        await subscribed.wait()  # no event published after this instance started is missed
    _shutdown_trigger_install(instance)
    logger.info("instance started", extra={"instance_id": instance.instance_id})
    return instance


async def instance_close() -> None:
    """Stop this loop's instance (tests; the process exit does it otherwise)."""
    starting = _instances.pop(asyncio.get_running_loop(), None)
    if starting is None:
        return
    instance = await starting
    for task in instance.tasks:
        task.cancel()
    # Bounded: a connection caught mid-read by the cancellation must not hold the close up for good.
    if instance.tasks:
        _done, pending = await asyncio.wait(instance.tasks, timeout=CLOSE_SECONDS)
        if pending:
            logger.warning("instance tasks still ending after close", extra={"tasks": len(pending)})
    try:
        async with asyncio.timeout(CLOSE_SECONDS):
            if instance.log_writer is not None:
                await instance.log_writer.close()
            if instance.redis is not None:
                await instance.redis.aclose()
    except TimeoutError:
        logger.warning("instance's Redis client not closed in time")


async def event_publish(instance: Instance, event: dict[str, Any]) -> None:
    """Tell every instance (this one included) about an event; raise RedisError if Redis is down."""
    if instance.redis is None:
        await _event_dispatch(event)
        return
    await instance.redis.publish(events_channel(), orjson.dumps(event))


async def _event_dispatch(event: dict[str, Any]) -> None:
    handler = event_handlers.get(event.get("type", ""))
    if handler is None:
        return
    try:
        await handler(event)
    except Exception:
        logger.exception("event handler failed", extra={"type": event.get("type")})


async def _listen_loop(client: redis_asyncio.Redis, subscribed: asyncio.Event) -> None:
    """Receive the instances' events; after a Redis outage, subscribe again and catch up.

    Pub/sub keeps nothing for a subscriber that was away, so the resubscribed hooks look for what
    may have been missed meanwhile (replies that started elsewhere).
    """
    global events_listening
    delay, lost = 0.0, False
    while True:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(events_channel())
            subscribed.set()
            events_listening, delay = True, 0.0
            if lost:
                lost = False
                for hook in resubscribed_hooks:
                    await hook()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    await _event_dispatch(orjson.loads(message["data"]))
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError):
            if not lost:
                logger.warning("event subscription lost; subscribing again", exc_info=True)
            events_listening, lost = False, True
            subscribed.set()  # never hold up start-up on a Redis outage
            await asyncio.sleep(delay)
            delay = min(max(delay * 2, 0.1), 5)
        finally:
            await pubsub.aclose()


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
    """Under Daphne (Twisted), make SIGTERM run the shutdown hooks (the drain) before the reactor stops,
    and only then let Daphne cancel the open sockets' consumers, so a tab already open on a draining
    instance can still stop its reply and is told `unavailable` for a new message."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    if not reactor.running:
        return
    # Daphne registers its "cancel every application" step as a before-shutdown trigger when it starts;
    # Twisted runs all before-shutdown triggers at once, so it is taken out here and run after the drain.
    shutdown = reactor._eventTriggers.get("shutdown")
    later = [t for t in (shutdown.before if shutdown else []) if _is_daphne_kill(t[0])]
    for trigger in later:
        shutdown.before.remove(trigger)

    def before_shutdown() -> defer.Deferred[Any]:
        instance.draining = True
        hooks = asyncio.gather(*(hook() for hook in shutdown_hooks), return_exceptions=True)
        drained = defer.Deferred.fromFuture(asyncio.ensure_future(hooks))
        for kill, args, kwargs in later:
            drained.addBoth(lambda _, kill=kill, args=args, kwargs=kwargs: kill(*args, **kwargs))
        return drained

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


def _is_daphne_kill(trigger: Any) -> bool:
    owner = getattr(trigger, "__self__", None)
    return getattr(trigger, "__name__", "") == "kill_all_applications" and type(owner).__module__.startswith(
        "daphne"
    )
