"""Faults of whole server processes (Daphne instances) and of their Redis: a SIGTERM leaves the tabs
already open able to act, and a Redis restart mid-reply drops no tab and no text.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from conversations.models import Message

from .servers import ChatClient, DaphneServer, text_after, until

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]


async def stored_reply(reply_id: int) -> Message:
    return await Message.objects.aget(pk=reply_id)


async def test_a_tab_open_before_sigterm_can_still_stop_its_reply_and_is_told_unavailable(
    instances_started, http, standin
):
    a, _b = instances_started(CHAT_SHUTDOWN_GRACE_SECONDS="15")
    tab = await ChatClient(http, a, "open-at-sigterm").connect()
    await tab.send({"message": "long [[standin tokens=2000 delay_ms=10]]"})
    start = await tab.receive()
    frames = [start, await tab.receive()]
    a.signal(signal.SIGTERM)
    await asyncio.sleep(0.5)  # the instance is draining: its reply goes on for the grace period

    await tab.send({"message": "one more"})
    frames += await tab.until_end()
    refused = frames[-1]
    assert (refused["type"], refused["code"]) == ("error", "unavailable")
    assert "message_id" not in refused  # it refuses the message; it does not end the reply

    await tab.send({"type": "stop"})
    frames += await tab.until_end()
    assert frames[-1] == {
        "type": "done",
        "message_id": start["message_id"],
        "usage": None,
        "finish_reason": "stopped",
    }
    reply = await stored_reply(start["message_id"])
    assert (reply.status, reply.finish_reason) == ("interrupted", "stopped")
    assert reply.content == text_after(0, frames)
    assert not await Message.objects.filter(content="one more").aexists()
    assert a.wait(15) == 0
    await tab.close()


async def test_a_redis_restart_mid_reply_closes_no_tab_and_loses_no_text(
    instances, http, standin, private_redis
):
    a, b = instances
    tab_b = await ChatClient(http, b, "redis-mid-reply").connect()
    tab_a = await ChatClient(http, a, "redis-mid-reply").connect()
    await tab_a.send({"message": "long [[standin stamp=1 tokens=400 delay_ms=10]]"})
    frames_b = [await tab_b.receive() for _ in range(6)]
    assert frames_b[0]["type"] == "start"
    reply_id = frames_b[0]["message_id"]

    private_redis.stop()
    private_redis.start()  # same port, empty: the reply log so far and the subscriptions are gone

    frames_a = await tab_a.until_end(wait=20)
    frames_b += await tab_b.until_end(wait=20)
    reply = await stored_reply(reply_id)
    assert (reply.status, reply.finish_reason) == ("complete", "stop")
    assert text_after(0, frames_a) == reply.content  # the writer's tab: every token once
    assert text_after(0, frames_b) == reply.content  # the follower's tab: no gap crossed, none repeated
    for frames in (frames_a, frames_b):
        assert [frame["type"] for frame in frames].count("done") == 1

    async def ready(server: DaphneServer) -> bool:
        async with http.get(f"{server.origin}/readyz") as response:
            return response.status == 200

    for server in (a, b):
        await until(lambda server=server: ready(server), wait=20)
    for writer, reader in ((tab_b, tab_a), (tab_a, tab_b)):  # the same tabs, each instance writing once
        await writer.send({"message": "next [[standin tokens=10]]"})
        written, read = await writer.until_end(), await reader.until_end()
        assert written[0]["type"] == read[0]["type"] == "start"
        assert written[-1]["type"] == read[-1]["type"] == "done"
        assert (
            text_after(0, read)
            == text_after(0, written)
            == (await stored_reply(written[0]["message_id"])).content
        )
    for tab in (tab_a, tab_b):
        assert tab.ws is not None
        assert not tab.ws.closed
        await tab.close()


async def test_a_redis_restart_while_a_tab_waits_leaves_it_open_for_the_next_message(
    instances, http, standin, private_redis
):
    a, _b = instances
    tab = await ChatClient(http, a, "redis-idle-tab").connect()
    private_redis.stop()
    with pytest.raises(TimeoutError):
        await tab.receive(wait=0.5)  # no close frame while Redis is away
    private_redis.start()

    async def ready() -> bool:
        async with http.get(f"{a.origin}/readyz") as response:
            return response.status == 200

    await until(ready, wait=20)
    await tab.send({"message": "still there? [[standin tokens=5]]"})
    frames = await tab.until_end()
    assert (frames[0]["type"], frames[-1]["type"]) == ("start", "done")
    await tab.close()
