"""Two server instances (Daphne processes) on one Postgres and one Redis: any socket on any instance sees
every reply of its conversation, exactly, and a reply survives its socket, a stop from elsewhere, a
SIGTERM and a SIGKILL of the instance that streams it; with each CHAT_EVENT_BUS backend.
"""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import orjson
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model

from conversations.models import Message

from .processes import DaphneServer, server_env
from .servers import ChatClient, page_session_headers, stamp_indices, text_after, until

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]


# The tests whose frames travel as events between the instances run with each CHAT_EVENT_BUS backend;
# the others (drain, kill, limits, the reply log) do not depend on it and run with the default only.
BOTH_EVENT_BUSES = pytest.mark.parametrize("event_bus", ["redis", "channels-redis"])


async def stored_reply(reply_id: int) -> Message:
    return await Message.objects.aget(pk=reply_id)


async def reply_streaming_on_both(
    http: aiohttp.ClientSession,
    a: DaphneServer,
    b: DaphneServer,
    session_id: str,
    message: str,
    chunks: int = 1,
) -> tuple[ChatClient, ChatClient, dict, list[dict]]:
    """A tab on each instance; A's sends `message`. Return both tabs, B's `start` and B's first chunks."""
    tab_b = await ChatClient(http, b, session_id).connect()
    tab_a = await ChatClient(http, a, session_id).connect()
    await tab_a.send({"message": message})
    start = await tab_b.receive()
    assert start["type"] == "start"
    return tab_a, tab_b, start, [await tab_b.receive() for _ in range(chunks)]


@BOTH_EVENT_BUSES
async def test_a_message_sent_on_one_instance_streams_to_a_tab_on_the_other(shared_instances, http, standin):
    a, b = shared_instances
    tab_b = await ChatClient(http, b, "cross").connect()
    tab_a = await ChatClient(http, a, "cross").connect()
    await tab_a.send({"message": "hello [[standin stamp=1 tokens=40 delay_ms=25]]"})
    frames_a, frames_b = await asyncio.gather(tab_a.until_end(), tab_b.until_end())

    # The tab on B hears of the reply while it streams (the group event), not from the log after it ended.
    assert frames_b[0]["type"] == "start"
    assert tab_b.received_at[0] < tab_a.received_at[-1]
    assert frames_b[0]["user_message"]["content"].startswith("hello")
    assert frames_b[-1]["type"] == "done"
    text_a, text_b = text_after(0, frames_a), text_after(0, frames_b)
    assert text_a == text_b
    assert stamp_indices(text_b) == list(range(40))
    assert (await stored_reply(frames_a[0]["message_id"])).content == text_b
    await tab_a.close()
    await tab_b.close()


@BOTH_EVENT_BUSES
async def test_a_regenerate_and_a_switch_on_one_instance_reach_a_tab_on_the_other(
    shared_instances, http, standin
):
    a, b = shared_instances
    tab_b = await ChatClient(http, b, "versions").connect()
    tab_a = await ChatClient(http, a, "versions").connect()
    await tab_a.send({"message": "first [[standin tokens=5]]"})
    first = (await tab_a.until_end())[0]
    await tab_b.until_end()
    await tab_a.send({"type": "regenerate", "message_id": first["message_id"]})
    second = (await tab_a.until_end())[0]
    start_b = (await tab_b.until_end())[0]
    # B hears of the new version with the parent it hangs under, so a page can tell it is a new branch.
    assert (start_b["message_id"], start_b["parent_id"]) == (second["message_id"], first["parent_id"])
    assert start_b["user_message"] is None

    await tab_a.send({"type": "switch", "message_id": first["message_id"]})
    history_a, history_b = await asyncio.gather(tab_a.receive(), tab_b.receive())
    for history in (history_a, history_b):
        assert history["type"] == "history"
        user, reply = history["messages"]
        assert (reply["id"], reply["siblings"]) == (
            first["message_id"],
            [first["message_id"], second["message_id"]],
        )
    await tab_a.close()
    await tab_b.close()


async def test_a_tab_joining_on_the_other_instance_mid_reply_sees_its_tool_activity(
    shared_instances, http, standin
):
    a, b = shared_instances
    tab_a = await ChatClient(http, a, "tools-cross").connect()
    await tab_a.send({"message": "find it [[standin tool=web_search tokens=120 delay_ms=10]]"})
    frames = [await tab_a.receive()]
    while sum(frame["type"] == "tool" for frame in frames) < 2:
        frames.append(await tab_a.receive())
    await asyncio.sleep(0.1)  # the reply log's writer sends every 20 ms

    tab_b = await ChatClient(http, b, "tools-cross").connect()
    streaming = tab_b.history["streaming"]
    assert streaming is not None
    (shown,) = [m for m in tab_b.history["messages"] if m["id"] == streaming["message_id"]]
    assert [(t["phase"], t["name"]) for t in shown["tools"]] == [
        ("call", "web_search"),
        ("result", "web_search"),
    ]
    assert (await tab_b.until_end())[-1]["type"] == "done"
    await tab_a.close()
    await tab_b.close()


async def test_a_client_that_leaves_one_instance_mid_reply_resumes_exactly_on_the_other(
    shared_instances, http, standin
):
    a, b = shared_instances
    tab = await ChatClient(http, a, "moving").connect()
    await tab.send({"message": "long [[standin stamp=1 tokens=150 delay_ms=10]]"})
    start = await tab.receive()
    seen = [await tab.receive() for _ in range(5)]
    await tab.close()  # the network drops; the reply goes on on instance A

    again = await ChatClient(http, b, "moving").connect()
    streaming = again.history["streaming"]
    assert streaming["message_id"] == start["message_id"]
    assert streaming["content"].startswith(text_after(0, seen))
    rest = await again.until_end()
    assert rest[-1]["type"] == "done"
    text = streaming["content"] + text_after(streaming["offset"], rest)
    assert stamp_indices(text) == list(range(150))  # no token lost, none twice
    assert (await stored_reply(start["message_id"])).content == text
    (request,) = standin.requests()
    assert request["outcome"] == "completed"
    await again.close()


async def test_a_client_that_leaves_one_instance_mid_reasoning_resumes_it_exactly_on_the_other(
    shared_instances, http, standin
):
    a, b = shared_instances
    steps = " ".join(f"s{i}" for i in range(80))
    tab = await ChatClient(http, a, "thinking-moving").connect()
    await tab.send(
        {
            "message": "deep [[standin reasoning=reasoning_details reasoning_ms=1600 reasoning_text="
            + steps.replace(" ", "%20")
            + "]]"
        }
    )
    start = await tab.receive()
    seen = [await tab.receive() for _ in range(5)]
    assert {frame["type"] for frame in seen} == {"reasoning"}
    await tab.close()  # the network drops mid-thought; the reply goes on on instance A

    again = await ChatClient(http, b, "thinking-moving").connect()
    streaming = again.history["streaming"]
    (live,) = [m for m in again.history["messages"] if m["id"] == start["message_id"]]
    so_far = live["reasoning"]
    assert so_far.startswith("".join(frame["content"] for frame in seen))
    assert streaming["reasoning_offset"] == len(so_far)
    rest = await again.until_end()
    offset = len(so_far)
    for frame in rest:
        if frame["type"] == "reasoning":
            assert frame["offset"] == offset  # exactly the rest: no gap, nothing twice
            offset += len(frame["content"])
    thought = so_far + "".join(frame["content"] for frame in rest if frame["type"] == "reasoning")
    assert thought == steps
    reply = await stored_reply(start["message_id"])
    assert (reply.reasoning, reply.reasoning_ms) == (steps, rest[-1]["reasoning_ms"])
    assert reply.content == text_after(0, rest)
    await again.close()


@BOTH_EVENT_BUSES
async def test_stop_from_a_tab_on_the_other_instance_ends_the_upstream_request(
    shared_instances, http, standin, record_property
):
    a, b = shared_instances
    # B's first chunk shows the reply is streaming.
    tab_a, tab_b, start, _ = await reply_streaming_on_both(
        http, a, b, "stopper", "endless [[standin tokens=2000 delay_ms=10]]"
    )
    stop_sent_at = time.time()
    await tab_b.send({"type": "stop"})

    frames_b, frames_a = await tab_b.until_end(), await tab_a.until_end()
    assert (frames_b[-1]["type"], frames_b[-1]["finish_reason"]) == ("done", "stopped")
    assert frames_a[-1]["finish_reason"] == "stopped"
    reply = await stored_reply(start["message_id"])
    assert reply.status == "interrupted"
    assert 0 < len(reply.content) < 2000 * 6

    async def upstream_closed() -> bool:
        return standin.requests()[0]["outcome"] == "client_disconnected"

    await until(upstream_closed, wait=5)
    # Reported, not asserted (timings are noisy here): how long the stop took to close the upstream request.
    record_property(
        "stop_to_upstream_closed_ms", round((standin.requests()[0]["ended_at"] - stop_sent_at) * 1000)
    )
    await tab_a.close()
    await tab_b.close()


async def form_post(http: aiohttp.ClientSession, url: str, fields: dict[str, str]) -> int:
    """POST a form as the page would: with the CSRF token its GET set. The status (redirects not followed)."""
    token = next(cookie.value for cookie in http.cookie_jar if cookie.key == "csrftoken")
    form = {**fields, "csrfmiddlewaretoken": token}
    async with http.post(url, data=form, allow_redirects=False) as response:
        return response.status


@BOTH_EVENT_BUSES
async def test_a_logout_on_one_instance_closes_the_sessions_sockets_on_both_4401(shared_instances, standin):
    a, b = shared_instances
    await sync_to_async(get_user_model().objects.create_user)("lena", password="pw-for-tests-only")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(a.url("/accounts/login/")) as page:
            assert page.status == 200
        login = {"username": "lena", "password": "pw-for-tests-only"}
        assert await form_post(http, a.url("/accounts/login/"), login) == 302
        session = next(cookie.value for cookie in http.cookie_jar if cookie.key == "sessionid")
        headers = {"Cookie": f"sessionid={session}"}
        tabs = [
            await http.ws_connect(server.ws_url("signed-out"), headers={**headers, "Origin": server.origin})
            for server in (b, a)
        ]
        for tab in tabs:
            assert orjson.loads((await tab.receive(timeout=10)).data)["type"] == "history"

        started = time.monotonic()
        assert await form_post(http, a.url("/accounts/logout/"), {}) == 302
        for tab in tabs:  # without sending anything: the logout closed them
            frame = orjson.loads((await tab.receive(timeout=5)).data)
            assert (frame["type"], frame["code"]) == ("error", "session_expired")
            closing = await tab.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert tab.close_code == 4401
        assert time.monotonic() - started < 3  # at once, not at a sweep


async def test_sigterm_lets_a_reply_in_flight_finish_and_a_tab_on_the_other_instance_sees_it(
    instances, http, standin
):
    a, b = instances
    _tab_a, tab_b, start, _ = await reply_streaming_on_both(
        http, a, b, "graceful", "finish me [[standin stamp=1 tokens=100 delay_ms=10]]"
    )
    a.signal(signal.SIGTERM)

    frames = await tab_b.until_end()
    assert frames[-1]["type"] == "done"
    assert frames[-1]["finish_reason"] == "stop"
    reply = await stored_reply(start["message_id"])
    assert reply.status == "complete"
    assert stamp_indices(reply.content) == list(range(100))
    assert a.wait(15) == 0
    await tab_b.close()


async def test_sigterm_past_the_grace_period_stores_the_reply_interrupted_and_says_so(
    instances_started, http, standin
):
    a, b = instances_started(CHAT_SHUTDOWN_GRACE_SECONDS="0.5")
    _tab_a, tab_b, start, (first,) = await reply_streaming_on_both(
        http, a, b, "impatient", "too long [[standin tokens=2000 delay_ms=10]]"
    )
    a.signal(signal.SIGTERM)

    frames = [first, *await tab_b.until_end()]
    assert (frames[-1]["type"], frames[-1]["finish_reason"]) == ("done", "interrupted")
    reply = await stored_reply(start["message_id"])
    assert reply.status == "interrupted"
    assert reply.content == text_after(0, frames)
    assert a.wait(15) == 0
    await tab_b.send({"message": "on b now"})
    assert (await tab_b.until_end())[-1]["type"] == "done"
    await tab_b.close()


async def test_a_draining_instance_refuses_new_messages_with_unavailable(instances_started, http, standin):
    a, b = instances_started(CHAT_SHUTDOWN_GRACE_SECONDS="5")
    tab_a = await ChatClient(http, a, "draining").connect()
    await tab_a.send({"message": "keeps it busy [[standin tokens=300 delay_ms=10]]"})
    await tab_a.receive()
    a.signal(signal.SIGTERM)

    late = await ChatClient(http, a, "draining-late").connect()
    await late.send({"message": "hello?"})
    frame = await late.receive()
    assert (frame["type"], frame["code"]) == ("error", "unavailable")
    assert not await Message.objects.filter(content="hello?").aexists()
    await late.close()
    await tab_a.close()


async def test_sigkill_mid_reply_leaves_nothing_streaming_and_the_conversation_usable(
    instances, http, standin
):
    a, b = instances
    tab_a, tab_b, start, _ = await reply_streaming_on_both(
        http, a, b, "killed", "doomed [[standin tokens=2000 delay_ms=10]]", chunks=30
    )
    a.signal(signal.SIGKILL)

    frames = await tab_b.until_end(wait=20)  # the lease lapses, instance B stores it as interrupted
    assert (frames[-1]["type"], frames[-1]["finish_reason"]) == ("done", "server_lost")
    reply = await stored_reply(start["message_id"])
    assert reply.status == "interrupted"
    assert reply.content  # its last saved text
    assert await Message.objects.filter(role="user", content__startswith="doomed").aexists()
    assert not await Message.objects.filter(status="streaming").aexists()

    await tab_b.send({"message": "still here?"})
    after = await tab_b.until_end()
    assert after[-1]["type"] == "done"
    await tab_b.close()


@BOTH_EVENT_BUSES
async def test_the_instances_recover_when_redis_restarts_while_idle(instances, http, standin, private_redis):
    a, b = instances
    tab_b = await ChatClient(http, b, "redis-restart").connect()
    tab_a = await ChatClient(http, a, "redis-restart").connect()
    await tab_a.send({"message": "before"})
    assert (await tab_a.until_end())[-1]["type"] == "done"
    assert (await tab_b.until_end())[-1]["type"] == "done"
    await tab_a.close()
    await tab_b.close()

    private_redis.stop()
    private_redis.start()  # same port, empty

    async def ready(server: DaphneServer) -> bool:
        async with http.get(f"{server.origin}/readyz") as response:
            return response.status == 200

    for server in (a, b):  # each instance says when it listens to the others' events again
        await until(lambda server=server: ready(server), wait=20)
    tab_b = await ChatClient(http, b, "redis-restart").connect()
    tab_a = await ChatClient(http, a, "redis-restart").connect()
    await tab_a.send({"message": "after [[standin tokens=30 delay_ms=10]]"})
    frames_a = await tab_a.until_end()
    assert frames_a[-1]["type"] == "done"
    frames_b = await tab_b.until_end()
    assert text_after(0, frames_b) == text_after(0, frames_a)
    await tab_a.close()
    await tab_b.close()


async def test_a_single_process_restarted_after_sigkill_frees_the_conversation(log_dir, standin, http):
    env = server_env(
        database_name=settings.DATABASES["default"]["NAME"],
        redis_url="",  # one process, without Redis
        standin_url=standin.url,
        CHAT_FLUSH_INTERVAL="0.2",
    )
    server = DaphneServer("solo", env, log_dir).start()
    try:
        tab = await ChatClient(http, server, "solo").connect()
        await tab.send({"message": "cut short [[standin tokens=2000 delay_ms=10]]"})
        start = await tab.receive()
        for _ in range(40):
            await tab.receive()
        server.signal(signal.SIGKILL)
        server.wait(10)
        await tab.close()

        server.start()  # same port, a new process
        tab = await ChatClient(http, server, "solo").connect()
        reply = await stored_reply(start["message_id"])
        assert (reply.status, reply.finish_reason) == ("interrupted", "server_lost")
        assert reply.content  # the last text it saved
        assert "streaming" not in tab.history
        await tab.send({"message": "and now?"})
        assert (await tab.until_end())[-1]["type"] == "done"
        await tab.close()
    finally:
        server.stop()


async def test_rate_and_socket_limits_hold_across_instances(instances_started, http, standin):
    a, b = instances_started(CHAT_RATE_LIMIT="3/minute", CHAT_MAX_SOCKETS_PER_OWNER="3")
    # One owner (one browser session) on both instances.
    on_a, on_b = (
        await ChatClient(http, a, "limits-1").connect(),
        await ChatClient(http, b, "limits-2").connect(),
    )
    for client in (on_a, on_a):
        await client.send({"message": "counted"})
        assert (await client.until_end())[-1]["type"] == "done"
    await on_b.send({"message": "third, on the other instance"})
    assert (await on_b.until_end())[-1]["type"] == "done"
    await on_b.send({"message": "fourth"})
    refused = await on_b.receive()
    assert (refused["type"], refused["code"]) == ("error", "rate_limited")

    third = await ChatClient(http, a, "limits-3").connect()  # the third socket, across both instances
    fourth = ChatClient(http, b, "limits-4")
    fourth.ws = await http.ws_connect(
        b.ws_url("limits-4"), headers=await page_session_headers(http, b.origin)
    )
    frame = await fourth.receive()
    assert frame["code"] == "too_many_sockets"
    closing = await fourth.ws.receive(timeout=5)
    assert (closing.type, fourth.ws.close_code) == (aiohttp.WSMsgType.CLOSE, 4429)
    for client in (on_a, on_b, third):
        await client.close()


async def test_the_daily_quota_holds_across_instances(instances_started, http, standin):
    a, b = instances_started(CHAT_DAILY_TOKEN_QUOTA="40")
    on_a = await ChatClient(http, a, "quota-1").connect()
    await on_a.send({"message": "spend [[standin tokens=45]]"})
    assert (await on_a.until_end())[-1]["type"] == "done"
    on_b = await ChatClient(http, b, "quota-2").connect()  # the same owner, the other instance
    await on_b.send({"message": "more"})
    refused = await on_b.receive()
    assert (refused["type"], refused["code"]) == ("error", "quota_exceeded")
    assert refused["retry_after"] > 0
    await on_a.close()
    await on_b.close()
