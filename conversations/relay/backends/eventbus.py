"""How server instances tell each other what happened: one event bus, in Redis or in this process.

Instances tell each other: "a reply started in this conversation" (so their sockets on it follow the
reply's log), "stop this reply" (for the instance streaming it), "this conversation's branch switched"
(its sockets get the new history), a frame for a conversation's sockets, and "this browser session
ended" (a logout: its sockets close). With Redis both go over
one pub/sub channel that every instance listens to: one message per event, whatever the number of
sockets, and no per-socket queue that can fill up or lose a message when its socket closes. Without
Redis there is one process, and events go straight to its own handler.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as redis_asyncio
from django.conf import settings
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

Dispatch = Callable[[dict[str, Any]], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]


class EventNotSent(Exception):
    """The bus could not take the event (Redis is down): other instances will not hear of it."""


class EventBus(ABC):
    """Delivers every published event to every instance's `dispatch`, this one's included.

    A backend that lacks one of these cannot be constructed (TypeError), so a missing method shows at
    start-up rather than at the first event that needs it."""

    @property
    @abstractmethod
    def listening(self) -> bool:
        """False while this instance cannot hear the others (readiness reports it)."""

    @abstractmethod
    async def start(self, dispatch: Dispatch, resubscribed: Hook) -> None:
        """Listen from now on; after an outage, `resubscribed` looks for what was missed meanwhile."""

    @abstractmethod
    async def publish(self, event: dict[str, Any]) -> None:
        """Send an event to every instance; raise EventNotSent when it cannot."""

    @abstractmethod
    async def close(self) -> None: ...


class LocalEventBus(EventBus):
    """One process: an event goes straight to its handler."""

    listening = True

    def __init__(self) -> None:
        self._dispatch: Dispatch | None = None

    async def start(self, dispatch: Dispatch, resubscribed: Hook) -> None:
        self._dispatch = dispatch

    async def publish(self, event: dict[str, Any]) -> None:
        if self._dispatch is not None:
            await self._dispatch(event)

    async def close(self) -> None:
        self._dispatch = None


def events_channel() -> str:
    """The deployment's pub/sub channel: its prefix and its database number (channels span databases)."""
    database = redis_asyncio.connection.parse_url(settings.REDIS_URL).get("db", 0)
    return f"{settings.CHAT_REDIS_PREFIX}:events:{database}"


class RedisEventBus(EventBus):
    """Every instance subscribes one Redis pub/sub channel; an event is one PUBLISH."""

    listening: bool = True  # a plain attribute: the loop below sets it

    def __init__(self, client: redis_asyncio.Redis) -> None:
        self.client = client
        self._task: asyncio.Task[None] | None = None

    async def start(self, dispatch: Dispatch, resubscribed: Hook) -> None:
        subscribed = asyncio.Event()
        self._task = asyncio.create_task(self._listen(dispatch, resubscribed, subscribed), name="events")
        await subscribed.wait()  # no event published after this instance started is missed

    async def publish(self, event: dict[str, Any]) -> None:
        try:
            await self.client.publish(events_channel(), orjson.dumps(event))
        except (RedisError, OSError) as exc:
            raise EventNotSent from exc

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen(self, dispatch: Dispatch, resubscribed: Hook, subscribed: asyncio.Event) -> None:
        """Receive the instances' events; after a Redis outage, subscribe again and catch up.

        Pub/sub keeps nothing for a subscriber that was away, so `resubscribed` looks for what may
        have been missed meanwhile (replies that started elsewhere).
        """
        delay, lost = 0.0, False
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(events_channel())
                subscribed.set()
                self.listening, delay = True, 0.0
                if lost:
                    lost = False
                    await resubscribed()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await dispatch(orjson.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                if not lost:
                    logger.warning("event subscription lost; subscribing again", exc_info=True)
                self.listening, lost = False, True
                subscribed.set()  # never hold up start-up on a Redis outage
                await asyncio.sleep(delay)
                delay = min(max(delay * 2, 0.1), 5)
            finally:
                await pubsub.aclose()
