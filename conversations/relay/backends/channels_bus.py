"""The instances' event bus over channels-redis (CHAT_EVENT_BUS=channels-redis): the same events as
RedisEventBus, through `channels_redis.pubsub.RedisPubSubChannelLayer`.

Each instance takes a channel of its own from the layer and adds it to one group for the cluster; an
event is one `group_send` (one PUBLISH, msgpack), read by one receiving task per process.

The layer tells nothing of an outage: its `on_disconnect`/`on_reconnect` options are stored but never
called (django/channels_redis#406), and redis-py resubscribes its connection silently. Readiness and the
catch-up need both, so this bus watches the layer's subscriber connection, which channels_redis 4.3.0
(pinned) keeps in a private attribute: `listening` is False while that connection is down, and each
time it connects again the catch-up runs, as RedisEventBus does after it subscribes again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from ...redisclient import redis_client_options
from .eventbus import Dispatch, EventBus, EventNotSent, Hook, events_channel

logger = logging.getLogger(__name__)

# Every instance's channel is in this group: an event sent to it reaches them all.
CLUSTER_GROUP = "instances"


def layer_create() -> RedisPubSubChannelLayer:
    """A layer on REDIS_URL whose commands time out as the other Redis clients' do, named under the
    deployment's events channel (so deployments sharing a Redis server never hear each other)."""
    return RedisPubSubChannelLayer(
        hosts=[{"address": settings.REDIS_URL, **redis_client_options()}],
        prefix=f"{events_channel()}:",
    )


class ChannelsRedisEventBus(EventBus):
    """Every instance's channel in one group of the channel layer; an event is one group_send."""

    def __init__(self) -> None:
        self.layer = layer_create()
        self._channel: str | None = None  # this instance's channel, once the layer took it
        self._joined = False  # the channel is in the cluster's group
        self._watched: AbstractConnection | None = None  # the subscriber connection a callback is on
        self._reconnected = False  # it connected again since the last catch-up
        self._reconnect_heard = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._receiver: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        connection = self._watched
        return self._joined and connection is not None and connection.is_connected and not self._reconnected

    async def start(self, dispatch: Dispatch, resubscribed: Hook) -> None:
        subscribed = asyncio.Event()
        self._watch = asyncio.create_task(self._run(dispatch, resubscribed, subscribed), name="events")
        await subscribed.wait()  # no event published after this instance started is missed

    async def publish(self, event: dict[str, Any]) -> None:
        try:
            # The layer sends one PUBLISH at a time per process (a lock), so a Redis that hangs would
            # queue every publish behind the first: each is bounded as a command is.
            async with asyncio.timeout(settings.CHAT_REDIS_TIMEOUT):
                await self.layer.group_send(CLUSTER_GROUP, event)
        except (RedisError, OSError, TimeoutError) as exc:
            raise EventNotSent from exc

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        # Flushed first, so the receiver's cancellation has no channel left to unsubscribe in Redis.
        await self.layer.flush()
        if self._receiver is not None:
            self._receiver.cancel()
            await asyncio.gather(self._receiver, return_exceptions=True)

    async def _run(self, dispatch: Dispatch, resubscribed: Hook, subscribed: asyncio.Event) -> None:
        """Join the cluster's group (again until Redis answers), then watch the subscriber connection:
        after it was lost, or after a start while Redis was down, catch up once it is back."""
        delay, lost = 0.0, False
        while not self._joined:
            try:
                if self._channel is None:
                    self._channel = await self.layer.new_channel("instance.")
                    self._receiver = asyncio.create_task(self._receive(dispatch), name="events-receive")
                await self.layer.group_add(CLUSTER_GROUP, self._channel)
                self._joined = True
            except (RedisError, OSError):
                # A channel the layer could not subscribe is dropped, and the next try takes another; a
                # subscribed one stays (redis-py subscribes it again when it reconnects).
                if not lost:
                    logger.warning("event subscription lost; subscribing again", exc_info=True)
                lost = True
                subscribed.set()  # never hold up start-up on a Redis outage
                await asyncio.sleep(delay)
                delay = min(max(delay * 2, 0.1), 5)
        self._connection_watch()
        subscribed.set()
        if lost:
            await resubscribed()
        while True:
            await self._reconnect_heard.wait()
            self._reconnect_heard.clear()
            self._reconnected = False
            await resubscribed()

    def _connection_watch(self) -> None:
        """Put a connect callback on the layer's subscriber connection, which redis-py keeps (and
        reconnects) for the layer's lifetime."""
        pubsub = self.layer._get_layer()._shards[0]._pubsub  # private in channels_redis 4.3.0
        connection = pubsub.connection
        assert connection is not None  # it subscribed this instance's channel
        connection.register_connect_callback(self._on_connect)
        self._watched = connection

    def _on_connect(self, connection: AbstractConnection) -> None:
        """redis-py connected the subscriber again and resubscribed it: events may have been missed."""
        logger.warning("event subscription lost; subscribed again")
        self._reconnected = True
        self._reconnect_heard.set()

    async def _receive(self, dispatch: Dispatch) -> None:
        assert self._channel is not None
        channel = self._channel
        while True:
            await dispatch(await self.layer.receive(channel))


_sync_layer: RedisPubSubChannelLayer | None = None


def publish_blocking(event: dict[str, Any]) -> None:
    """Send an event to every instance from sync code (a logout's HTTP request); raise RedisError or
    OSError when Redis does not take it. Under the ASGI server it runs on the server's event loop."""
    global _sync_layer
    if _sync_layer is None:
        _sync_layer = layer_create()
    async_to_sync(_sync_layer.group_send)(CLUSTER_GROUP, event)
