"""The instances' event bus in Redis, with each CHAT_EVENT_BUS backend: `listening` follows the
subscription through a Redis restart, the catch-up runs once it is back (pub/sub kept nothing
meanwhile), start-up does not wait for a Redis that is down, and publishes to a Redis that does not
answer fail in bounded time."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from conversations.redisclient import redis_client
from conversations.relay.backends.channels_bus import ChannelsRedisEventBus
from conversations.relay.backends.eventbus import EventBus, EventNotSent, RedisEventBus


async def until(check: Callable[[], bool], wait: float = 15) -> None:
    deadline = time.monotonic() + wait
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@dataclass
class Heard:
    """What a bus delivered, and when it caught up after an outage."""

    events: list[dict] = field(default_factory=list)
    catch_ups: list[float] = field(default_factory=list)

    async def dispatch(self, event: dict) -> None:
        self.events.append(event)

    async def resubscribed(self) -> None:
        self.catch_ups.append(time.monotonic())

    async def after_publish(self, bus: EventBus, n: int) -> None:
        await bus.publish({"type": "bus-test", "n": n})
        await until(lambda: any(event.get("n") == n for event in self.events), wait=5)


@pytest.fixture(params=["redis", "channels-redis"])
async def bus_of(request, settings) -> AsyncIterator[Callable[[str], EventBus]]:
    """Buses of the CHAT_EVENT_BUS backend under test, on the Redis at a URL."""
    made: list[EventBus] = []

    def make(url: str) -> EventBus:
        settings.REDIS_URL = url  # the channel's name carries its database number
        made.append(
            ChannelsRedisEventBus() if request.param == "channels-redis" else RedisEventBus(redis_client(url))
        )
        return made[-1]

    yield make
    for bus in made:
        await bus.close()
        if isinstance(bus, RedisEventBus):
            await bus.client.aclose()


async def test_a_redis_restart_is_reported_and_caught_up(private_redis, bus_of):
    bus, heard = bus_of(private_redis.url), Heard()
    await bus.start(heard.dispatch, heard.resubscribed)
    await heard.after_publish(bus, 1)  # an event published right after start is heard
    assert bus.listening
    assert not heard.catch_ups

    private_redis.stop()
    await until(lambda: not bus.listening)
    with pytest.raises(EventNotSent):
        await asyncio.wait_for(bus.publish({"type": "bus-test", "n": 2}), 10)
    private_redis.start()
    await until(lambda: bus.listening and len(heard.catch_ups) == 1)
    await heard.after_publish(bus, 3)
    assert [event["n"] for event in heard.events] == [1, 3]
    await asyncio.sleep(1)
    assert len(heard.catch_ups) == 1


async def test_a_bus_started_while_redis_is_down_catches_up_once_it_is_back(private_redis, bus_of):
    bus, heard = bus_of(private_redis.url), Heard()
    private_redis.stop()
    await asyncio.wait_for(bus.start(heard.dispatch, heard.resubscribed), 10)
    assert not bus.listening
    private_redis.start()
    await until(lambda: bus.listening and len(heard.catch_ups) == 1)
    await heard.after_publish(bus, 1)


async def test_publishes_to_a_frozen_redis_fail_in_bounded_time(private_redis, bus_of, settings):
    settings.CHAT_REDIS_TIMEOUT = 0.5
    bus, heard = bus_of(private_redis.url), Heard()
    await asyncio.wait_for(bus.start(heard.dispatch, heard.resubscribed), 10)

    async def publish() -> BaseException | None:
        try:
            await bus.publish({"type": "bus-test"})
        except EventNotSent as exc:
            return exc
        return None

    private_redis.signal(signal.SIGSTOP)  # connected, and no answer: a half-open connection
    try:
        for count in (1, 8):
            results = await asyncio.wait_for(asyncio.gather(*(publish() for _ in range(count))), 30)
            assert all(isinstance(result, EventNotSent) for result in results)
    finally:
        private_redis.signal(signal.SIGCONT)
