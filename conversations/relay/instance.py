"""This server process on its event loop: one `Instance` holds everything that lives in the process.

Its rooms and their sockets, its open sockets, its reply tasks, the upstream client, the rate limiters, and
the backends that reach the other instances (event bus, reply log, socket counter: Redis when
REDIS_URL is set, in memory otherwise, chosen once here; CHAT_EVENT_BUS picks the event bus's Redis
backend). What to do with events, each heartbeat and
at shutdown comes from the relay's cluster module, installed by `ConversationsConfig.ready()`.

A heartbeat renews the leases of this instance's replies (the id marks them) and stores as lost the
replies whose server died. Under Daphne, a SIGTERM first lets the drain run (replies in flight get a
grace period), then the reactor stops.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis_asyncio
from django.conf import settings
from limits.aio.storage import MemoryStorage

from .. import upstream
from ..redisclient import redis_client
from .backends.channels_bus import ChannelsRedisEventBus
from .backends.eventbus import EventBus, EventNotSent, LocalEventBus, RedisEventBus
from .backends.limits import (
    LocalSocketCounter,
    RateLimits,
    RedisSocketCounter,
    SocketCounter,
    redis_rate_storage,
)
from .backends.replylog import LocalReplyLog, RedisReplyLog, ReplyLog
from .live import Rooms
from .session_sockets import SocketsBySession
from .turnwriter import TurnWriter

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InstanceHooks:
    """What an instance does with an event from any instance, after its events were cut off for a while
    (a Redis outage), at each heartbeat, and at shutdown (the drain)."""

    event: Callable[[Instance, dict[str, Any]], Awaitable[None]]
    resubscribed: Callable[[Instance], Awaitable[None]]
    heartbeat: Callable[[Instance], Awaitable[None]]
    drain: Callable[[Instance], Awaitable[None]]


_hooks: InstanceHooks | None = None


def hooks_install(hooks: InstanceHooks) -> None:
    """Set what every instance started from now on does (called once, from the app's ready())."""
    global _hooks
    _hooks = hooks


@dataclass(eq=False)
class Instance:
    """The per-process state shared by every socket and reply on one event loop."""

    hooks: InstanceHooks
    bus: EventBus
    reply_log: ReplyLog
    socket_counter: SocketCounter
    limits: RateLimits
    redis: redis_asyncio.Redis | None = None  # closed with the instance; the backends use it
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    rooms: Rooms = field(default_factory=Rooms)
    sockets: dict[str, str] = field(default_factory=dict)  # open sockets: socket id -> owner key
    by_session: SocketsBySession = field(default_factory=SocketsBySession)  # open sockets by session
    turn_writer: TurnWriter = field(default_factory=TurnWriter)
    # Reads the files a reply's request carries: few threads, so few files are in memory at once, and
    # none queues a database call of the loop's shared executor behind it.
    file_reader: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=settings.CHAT_REQUEST_FILE_READERS, thread_name_prefix="file-reader"
        )
    )
    # Reply tasks (local and followed, and the title requests after first replies), referenced so the
    # event loop never collects one mid-reply.
    reply_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    draining: bool = False
    heartbeat: asyncio.Task[None] | None = None
    _upstream: upstream.UpstreamClient | None = None

    def upstream(self) -> upstream.UpstreamClient:
        """The upstream client every reply of this instance shares, made at the first reply (with the
        settings of that moment)."""
        if self._upstream is None:
            self._upstream = upstream.upstream_client_create()
        return self._upstream

    def reply_task_start(self, coroutine: Any, *, name: str) -> asyncio.Task[None]:
        """Run a reply's task (streaming or following), kept referenced until it ends."""
        task = asyncio.create_task(coroutine, name=name)
        self.reply_tasks.add(task)
        task.add_done_callback(self.reply_tasks.discard)
        return task

    async def replies_drain_for_testing(self) -> None:
        """Wait for every reply task of this instance to end (a test's replies, before the next test)."""
        assert settings.TEST_SUITE
        while self.reply_tasks:
            await asyncio.gather(*list(self.reply_tasks), return_exceptions=True)

    async def publish(self, kind: str, **fields: Any) -> None:
        """Send an event of this instance to every instance; raise EventNotSent when the bus cannot."""
        await self.bus.publish({"type": kind, "origin": self.instance_id, **fields})

    async def announce(self, kind: str, room_key: str, **fields: Any) -> None:
        """Tell the other instances about something that happened in a conversation; a failure is
        logged, not raised: the conversation itself is stored and goes on."""
        try:
            await self.publish(kind, room=room_key, **fields)
        except EventNotSent:
            logger.warning("%s not announced", kind, extra={"room": room_key}, exc_info=True)

    async def _event_dispatch(self, event: dict[str, Any]) -> None:
        try:
            await self.hooks.event(self, event)
        except Exception:
            logger.exception("event handler failed", extra={"type": event.get("type")})

    async def _resubscribed(self) -> None:
        try:
            await self.hooks.resubscribed(self)
        except Exception:
            logger.exception("catching up after an events outage failed")

    async def _heartbeat_loop(self) -> None:
        """Beat now (crash recovery at start) and every third of the lease."""
        while True:
            try:
                await self.hooks.heartbeat(self)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("heartbeat failed", exc_info=True)
            await asyncio.sleep(settings.CHAT_REPLY_LEASE_SECONDS / 3)


def redis_event_bus(redis: redis_asyncio.Redis) -> EventBus:
    """The event bus over Redis that CHAT_EVENT_BUS picks (`redis` uses the client given)."""
    return ChannelsRedisEventBus() if settings.CHAT_EVENT_BUS == "channels-redis" else RedisEventBus(redis)


def instance_create() -> Instance:
    """A new instance with the backends the settings choose (its heartbeat and events not started)."""
    if _hooks is None:
        raise RuntimeError("no instance hooks installed: is the conversations app loaded?")
    if not settings.REDIS_URL:
        return Instance(
            hooks=_hooks,
            bus=LocalEventBus(),
            reply_log=LocalReplyLog(),
            socket_counter=LocalSocketCounter(),
            limits=RateLimits(MemoryStorage()),
        )
    redis = redis_client(settings.REDIS_URL)
    return Instance(
        hooks=_hooks,
        bus=redis_event_bus(redis),
        reply_log=RedisReplyLog(redis),
        socket_counter=RedisSocketCounter(redis),
        limits=RateLimits(redis_rate_storage()),
        redis=redis,
    )


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
    instance = instance_create()
    instance.heartbeat = asyncio.create_task(instance._heartbeat_loop(), name="instance-heartbeat")
    await instance.bus.start(instance._event_dispatch, instance._resubscribed)
    _shutdown_trigger_install(instance)
    logger.info("instance started", extra={"instance_id": instance.instance_id})
    return instance


def instance_running() -> Instance | None:
    """This event loop's instance if it has started, else None (it never starts one)."""
    starting = _instances.get(asyncio.get_running_loop())
    if starting is None or not starting.done() or starting.cancelled() or starting.exception() is not None:
        return None
    return starting.result()


def instances_started() -> list[tuple[asyncio.AbstractEventLoop, Instance]]:
    """Every started instance of this process with its event loop (from any thread: a sync view)."""
    for _ in range(3):
        try:
            started = list(_instances.items())
            break
        except RuntimeError:  # the dictionary changed while it was read
            continue
    else:
        return []
    return [
        (loop, task.result())
        for loop, task in started
        # A closed loop's instance serves nothing (its sockets went with it), though it may not be
        # collected yet.
        if not loop.is_closed() and task.done() and not task.cancelled() and task.exception() is None
    ]


def events_listening() -> bool:
    """False while an instance of this process cannot hear the other instances (readiness, which asks
    from a worker thread while the event loop may be adding an instance: then it asks again)."""
    for _ in range(3):
        try:
            started = [task for task in list(_instances.values()) if task.done() and not task.cancelled()]
            break
        except RuntimeError:  # the dictionary changed while it was read
            continue
    else:
        return True
    return all(task.result().bus.listening for task in started if task.exception() is None)


async def instance_close_for_testing() -> None:
    """Stop this loop's instance at the end of a test (the process exit does it otherwise)."""
    assert settings.TEST_SUITE
    starting = _instances.pop(asyncio.get_running_loop(), None)
    if starting is None:
        return
    instance = await starting
    parts: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    if (heartbeat := instance.heartbeat) is not None:
        heartbeat.cancel()
        parts.append(("heartbeat", lambda: asyncio.gather(heartbeat, return_exceptions=True)))
    instance.turn_writer.close()
    instance.file_reader.shutdown(wait=False)
    parts += [("events", instance.bus.close), ("reply log", instance.reply_log.close)]
    if instance._upstream is not None:
        parts.append(("upstream client", instance._upstream.close))
    if instance.redis is not None:
        parts.append(("Redis client", instance.redis.aclose))
    for name, close in parts:
        # Each bounded on its own: a connection caught mid-read must not hold up the rest for good.
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await close()
        except TimeoutError:
            logger.warning("instance part not closed in time", extra={"part": name})


def _shutdown_trigger_install(instance: Instance) -> None:
    """Under Daphne (Twisted), make SIGTERM run the drain before the reactor stops, and only then let
    Daphne cancel the open sockets' consumers, so a tab already open on a draining instance can still
    stop its reply and is told `unavailable` for a new message."""
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
        drain = asyncio.ensure_future(asyncio.gather(instance.hooks.drain(instance), return_exceptions=True))
        drained = defer.Deferred.fromFuture(drain)
        for kill, args, kwargs in later:
            drained.addBoth(lambda _, kill=kill, args=args, kwargs=kwargs: kill(*args, **kwargs))
        return drained

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


def _is_daphne_kill(trigger: Any) -> bool:
    owner = getattr(trigger, "__self__", None)
    return getattr(trigger, "__name__", "") == "kill_all_applications" and type(owner).__module__.startswith(
        "daphne"
    )
