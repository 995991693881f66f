"""Replies beyond the upstream pool's connections wait for a free one, within their first-token time:
a busy instance queues a reply, it does not fail it after the few seconds a TCP connect may take."""

from __future__ import annotations

import pytest

from .conftest import reply_collect, socket_open

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_reply_waits_for_a_free_upstream_connection(standin, replies_settle, settings):
    settings.CHAT_UPSTREAM_MAX_CONNECTIONS = 1  # read when this test's instance makes its upstream client
    settings.CHAT_UPSTREAM_CONNECT_TIMEOUT = 0.3
    settings.CHAT_UPSTREAM_FIRST_TOKEN_TIMEOUT = 10
    first = await socket_open("/ws/chat/pool-first/")
    second = await socket_open("/ws/chat/pool-second/")

    await first.send_json_to({"message": "long [[standin tokens=20 delay_ms=60]]"})
    assert (await first.receive_json_from(timeout=5))["type"] == "start"
    await second.send_json_to({"message": "waits for the connection [[standin tokens=3]]"})

    frames = await reply_collect(second)
    assert frames[-1]["type"] == "done", frames[-1]
    assert (await reply_collect(first))[-1]["type"] == "done"
    for tab in (first, second):
        await tab.disconnect()
