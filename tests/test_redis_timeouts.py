"""A Redis that stops answering (a half-open connection) fails a command after CHAT_REDIS_TIMEOUT instead
of hanging it forever, while the instances' idle event subscription is never cut by that timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from conversations.redisclient import redis_client, redis_client_options
from conversations.relay import following
from conversations.relay import instance as instances
from conversations.relay.backends.channels_bus import ChannelsRedisEventBus
from conversations.relay.backends.eventbus import EventBus, RedisEventBus
from conversations.relay.backends.limits import RateLimits, redis_rate_storage

pytestmark = pytest.mark.django_db(transaction=True)  # the instance's heartbeat reads the database


@pytest.fixture
async def silent_redis() -> AsyncIterator[str]:
    """A server that accepts connections and never answers: what a half-open connection looks like."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in held:
        writer.close()
    server.close()


@pytest.fixture
async def instance_closed() -> AsyncIterator[None]:
    yield
    await instances.instance_close_for_testing()


async def test_a_command_to_a_redis_that_never_answers_fails_after_the_timeout(silent_redis, settings):
    settings.CHAT_REDIS_TIMEOUT = 0.5
    client = redis_client(silent_redis)
    try:
        with pytest.raises(RedisTimeoutError):
            await asyncio.wait_for(client.ping(), 5)  # a hang would end in asyncio's TimeoutError
    finally:
        await client.aclose()


async def test_the_message_rate_limit_gives_up_after_the_timeout_instead_of_hanging(
    silent_redis, settings, caplog
):
    settings.REDIS_URL, settings.CHAT_REDIS_TIMEOUT, settings.CHAT_RATE_LIMIT = silent_redis, 0.5, "5/minute"
    # It fails open (logged): an outage of the counters must not stop every chat.
    limits = RateLimits(redis_rate_storage())
    await asyncio.wait_for(limits.message_check(owner_key="someone"), 5)  # a hang would time out
    assert "message rate not counted" in caplog.text


@pytest.mark.parametrize("backend", ["redis", "channels-redis"])
async def test_an_idle_event_subscription_outlives_the_command_timeout(
    settings, caplog, instance_closed, backend
):
    settings.CHAT_REDIS_TIMEOUT = 0.3
    heard = asyncio.Event()

    async def dispatch(event: dict) -> None:
        if event.get("type") == "timeout-test":
            heard.set()

    async def resubscribed() -> None:
        pass

    # The instance's commands carry the timeout (the silent server above shows what it does).
    instance = await instances.instance_get()
    assert instance.redis.connection_pool.connection_kwargs["socket_timeout"] == 0.3
    bus: EventBus
    if backend == "channels-redis":
        bus = ChannelsRedisEventBus()
    else:
        bus = RedisEventBus(redis_client(settings.REDIS_URL))
    with caplog.at_level(logging.WARNING, logger="conversations.relay.backends"):
        await bus.start(dispatch, resubscribed)
        try:
            await asyncio.sleep(1.5)  # five command timeouts with nothing on the channel
            assert bus.listening
            assert instances.events_listening()
            await bus.publish({"type": "timeout-test"})
            await asyncio.wait_for(heard.wait(), 2)
        finally:
            await bus.close()
            if isinstance(bus, RedisEventBus):
                await bus.client.aclose()
    assert "event subscription lost" not in caplog.text


def test_the_command_timeout_outlasts_the_reply_logs_blocking_read():
    assert redis_client_options()["socket_timeout"] > following.FOLLOW_CHECK_MS / 1000
