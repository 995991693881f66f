"""Reply leases on one process: renewed only while a task streams the reply, judged by the database's
clock, fenced against an owner that lost its reply, and the reply log that followers and a lost reply's
stored text rely on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
import redis.asyncio as redis_asyncio
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone

from conversations import protocol
from conversations.chat import replies, turns
from conversations.chat.reply_end import ReplyEnd
from conversations.models import Message
from conversations.owners import ConversationRef, Owner
from conversations.relay import cluster
from conversations.relay import instance as instances
from conversations.relay import turns as relay_turns
from conversations.relay.backends import replylog

from .chat_sockets import BROWSER_SESSION_KEY, chunks_text, reply_collect, socket_open
from .servers import stamp_indices, text_after, until

pytestmark = pytest.mark.django_db(transaction=True)

BROWSER = Owner(session_key=BROWSER_SESSION_KEY)
# The instance id of a server that is not this process (it died, froze or streams elsewhere).
OTHER_INSTANCE = "0ther1nstance0000000000000000000"


def ref_of(session_id: str) -> ConversationRef:
    return ConversationRef(BROWSER.key, session_id)


async def streaming_reply_store(session_id: str, *, streamed_by: str) -> int:
    """Store a turn of the suite's browser as an instance does before it streams (the user message and
    the streaming reply row under `streamed_by`'s fresh lease), with no task streaming it here; return the
    reply's id. Its reply log starts empty (an earlier run's test database reused the id)."""
    request = turns.TurnRequest(ref=ref_of(session_id), owner=BROWSER, streamed_by=streamed_by)
    turn = await sync_to_async(turns.turn_begin_for_testing)(request, content=f"question in {session_id}")
    if django_settings.REDIS_URL:
        client = redis_asyncio.Redis.from_url(django_settings.REDIS_URL)
        await client.delete(replylog.log_key(turn.reply_id))
        await client.aclose()
    return turn.reply_id


async def stored(reply_id: int) -> Message:
    return await Message.objects.aget(pk=reply_id)


async def lease_lapse(reply_id: int) -> None:
    """Make the reply's lease lapse on the database's clock, as if its server stopped renewing it."""
    await Message.objects.filter(pk=reply_id).aupdate(lease_expires_at=Now() - timedelta(seconds=1))


async def database_now() -> datetime:
    def read() -> datetime:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            return cursor.fetchone()[0]

    return await sync_to_async(read)()


@pytest.fixture
async def other_instance_log() -> AsyncIterator[replylog.RedisReplyLog]:
    """The reply log of another instance, on its own Redis connection."""
    client = redis_asyncio.Redis.from_url(django_settings.REDIS_URL)
    writer = replylog.RedisReplyLog(client)
    yield writer
    await writer.close()
    await client.aclose()


async def log_write(writer: replylog.RedisReplyLog, reply_id: int, offset: int, text: str) -> None:
    """Append one text entry and wait until it is in Redis (so adjacent entries are never merged)."""
    writer.text(reply_id, offset, text)
    await writer.drained()


async def frames_until_end(
    communicator: Any, first: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    return [*(first or []), *await reply_collect(communicator)]


# Leases renew only for live reply tasks.


async def test_a_streaming_row_of_this_instance_with_no_task_is_not_renewed_and_lapses(
    standin, replies_settle, settings
):
    settings.CHAT_REPLY_LEASE_SECONDS = 1.5
    instance = await instances.instance_get()
    reply_id = await streaming_reply_store("taskless", streamed_by=instance.instance_id)
    leased_until = (await stored(reply_id)).lease_expires_at

    await asyncio.sleep(0.2)
    await cluster.heartbeat(instance)
    assert (await stored(reply_id)).lease_expires_at == leased_until  # no task streams it: not renewed

    async def stored_as_lost() -> bool:
        await cluster.heartbeat(instance)
        return (await stored(reply_id)).status != Message.Status.STREAMING

    await until(stored_as_lost, wait=5, interval=0.2)
    reply = await stored(reply_id)
    assert (reply.status, reply.finish_reason, reply.error_code) == (
        "interrupted",
        "server_lost",
        "server_lost",
    )

    tab = await socket_open("/ws/chat/taskless/")
    assert "streaming" not in tab.history
    await tab.send_json_to({"message": "and now?"})
    frames = await reply_collect(tab)
    assert (frames[0]["type"], frames[-1]["type"], frames[-1]["finish_reason"]) == ("start", "done", "stop")
    assert (await stored(frames[0]["message_id"])).content == chunks_text(frames)
    await tab.disconnect()


async def test_the_heartbeat_renews_the_lease_of_a_reply_this_process_streams(chat_socket, settings):
    settings.CHAT_FLUSH_INTERVAL = 60  # no flush extends the lease meanwhile: only the heartbeat does
    await chat_socket.send_json_to({"message": "slow [[standin tokens=100 delay_ms=20]]"})
    start = await chat_socket.receive_json_from(timeout=5)
    leased_until = (await stored(start["message_id"])).lease_expires_at

    await asyncio.sleep(0.3)
    await cluster.heartbeat(await instances.instance_get())
    renewed_until = (await stored(start["message_id"])).lease_expires_at
    assert renewed_until - leased_until >= timedelta(seconds=0.25)

    frames = await reply_collect(chat_socket)
    assert frames[-1]["finish_reason"] == "stop"
    reply = await stored(start["message_id"])
    assert (reply.status, reply.lease_expires_at) == ("complete", None)


# Fenced writes: an owner that lost its reply changes nothing.


async def test_an_owner_that_lost_its_reply_can_neither_save_renew_nor_finish_it():
    reply_id = await streaming_reply_store("fenced", streamed_by=OTHER_INSTANCE)
    flush = sync_to_async(replies.reply_flush)
    finish = sync_to_async(replies.reply_finish)
    renew = sync_to_async(replies.reply_leases_renew)

    assert not await flush(reply_id=reply_id, content="not mine", streamed_by="someone-else")
    assert await flush(reply_id=reply_id, content="saved", streamed_by=OTHER_INSTANCE)
    lost = await sync_to_async(replies.reply_lost_store)(
        reply_id=reply_id, shown_text="saved and shown", streamed_by=OTHER_INSTANCE
    )
    assert lost is not None

    # The owner wakes up (it froze past its lease) and tries to go on.
    assert not await flush(
        reply_id=reply_id, content="saved and shown, then more", streamed_by=OTHER_INSTANCE
    )
    assert await renew(streamed_by=OTHER_INSTANCE, reply_ids=[reply_id]) == set()
    assert not await finish(
        reply_id=reply_id,
        streamed_by=OTHER_INSTANCE,
        content="saved and shown, then all of it",
        end=ReplyEnd(status=Message.Status.COMPLETE, finish_reason="stop"),
    )
    reply = await stored(reply_id)
    assert (reply.content, reply.status, reply.finish_reason) == (
        "saved and shown",
        "interrupted",
        "server_lost",
    )
    assert (reply.lease_expires_at, reply.error_code) == (None, "server_lost")


async def test_a_reply_stored_as_lost_under_its_streaming_owner_ends_once_with_the_stored_text(
    chat_socket, standin, settings
):
    settings.CHAT_FLUSH_INTERVAL = 0.2
    await chat_socket.send_json_to({"message": "long [[standin tokens=400 delay_ms=20]]"})
    start = await chat_socket.receive_json_from(timeout=5)
    reply_id = start["message_id"]
    seen = [await chat_socket.receive_json_from(timeout=5) for _ in range(10)]
    instance = await instances.instance_get()

    # Another instance judged this one dead and stored the reply with what it had been shown.
    lost = await sync_to_async(replies.reply_lost_store)(
        reply_id=reply_id, shown_text=chunks_text(seen), streamed_by=instance.instance_id
    )
    assert lost is not None

    frames = await frames_until_end(chat_socket, seen)
    ends = [frame for frame in frames if frame["type"] in ("done", "error")]
    assert ends == [{"type": "done", "message_id": reply_id, "usage": None, "finish_reason": "server_lost"}]
    # The stored state comes before the end, so the tab holds the stored text when it learns of the end.
    (history,) = [frame for frame in frames if frame["type"] == "history"]
    assert "streaming" not in history
    (shown,) = [message for message in history["messages"] if message["id"] == reply_id]
    assert (shown["content"], shown["status"]) == (chunks_text(seen), "interrupted")
    assert await chat_socket.receive_nothing(timeout=0.5)

    await (await instances.instance_get()).replies_drain_for_testing()
    reply = await stored(reply_id)
    assert (reply.content, reply.status, reply.finish_reason) == (
        chunks_text(seen),
        "interrupted",
        "server_lost",
    )


# Lease expiry is judged by the database's clock.


async def test_leases_are_judged_and_renewed_by_the_database_clock_not_this_servers(monkeypatch):
    reply_id = await streaming_reply_store("clock", streamed_by=OTHER_INSTANCE)
    server_clock = timezone.now

    monkeypatch.setattr(timezone, "now", lambda: server_clock() + timedelta(hours=1))  # runs an hour ahead
    assert reply_id not in await sync_to_async(replies.lapsed_reply_ids)()
    assert (
        await sync_to_async(replies.reply_lost_store)(reply_id=reply_id, shown_text="") is None
    )  # a fresh lease is not lapsed, whatever this server's clock says

    monkeypatch.setattr(timezone, "now", lambda: server_clock() - timedelta(hours=1))  # runs an hour behind
    await lease_lapse(reply_id)
    assert await sync_to_async(replies.lapsed_reply_ids)() == [reply_id]

    assert await sync_to_async(replies.reply_leases_renew)(
        streamed_by=OTHER_INSTANCE, reply_ids=[reply_id]
    ) == {reply_id}
    ahead = (await stored(reply_id)).lease_expires_at - await database_now()
    assert timedelta(seconds=25) < ahead <= timedelta(seconds=django_settings.CHAT_REPLY_LEASE_SECONDS)
    assert await sync_to_async(replies.lapsed_reply_ids)() == []


# A lost reply keeps what its log showed.


async def other_instance_reply_saved(session_id: str, saved: str) -> int:
    """A reply another instance streams, with `saved` as its last saved text; return its id."""
    reply_id = await streaming_reply_store(session_id, streamed_by=OTHER_INSTANCE)
    assert await sync_to_async(replies.reply_flush)(
        reply_id=reply_id, content=saved, streamed_by=OTHER_INSTANCE
    )
    return reply_id


async def test_a_reply_whose_server_died_is_stored_with_all_the_text_its_log_showed(
    replies_settle, other_instance_log
):
    instance = await instances.instance_get()
    reply_id = await other_instance_reply_saved("log-kept", "Hello ")
    other_instance_log.start(reply_id)
    await log_write(other_instance_log, reply_id, 0, "Hello ")
    await log_write(other_instance_log, reply_id, 6, "world, shown after the last save")
    await lease_lapse(reply_id)  # the other instance died before its next save

    await cluster.heartbeat(instance)
    await instance.reply_log.drained()

    reply = await stored(reply_id)
    assert (reply.content, reply.status, reply.finish_reason) == (
        "Hello world, shown after the last save",
        "interrupted",
        "server_lost",
    )
    entries = await instance.reply_log.read(reply_id, "0-0")
    assert entries[-1].kind == "end"
    assert orjson.loads(entries[-1].frame) == {
        "type": "done",
        "message_id": reply_id,
        "usage": None,
        "finish_reason": "server_lost",
    }


async def test_a_lost_reply_keeps_its_logged_text_only_up_to_the_first_gap(
    replies_settle, other_instance_log
):
    instance = await instances.instance_get()
    reply_id = await other_instance_reply_saved("log-gap", "He")
    other_instance_log.start(reply_id)  # as its writer does first
    await log_write(other_instance_log, reply_id, 0, "Hello ")
    await log_write(other_instance_log, reply_id, 12, "never shown")  # offsets 6 to 12 never reached the log
    await lease_lapse(reply_id)

    await cluster.heartbeat(instance)
    assert (await stored(reply_id)).content == "Hello "  # what followers were shown, no more
    assert (await instance.reply_log.fenced_shown(reply_id)).text == "Hello "


async def test_a_lost_reply_keeps_the_reasoning_its_log_showed_up_to_its_own_first_gap(
    replies_settle, other_instance_log
):
    instance = await instances.instance_get()
    reply_id = await other_instance_reply_saved("log-reasoning", "")
    other_instance_log.start(reply_id)
    for offset, thought in ((0, "First "), (6, "this, "), (20, "never shown")):
        other_instance_log.reasoning(reply_id, offset, thought)
        await other_instance_log.drained()
    await log_write(other_instance_log, reply_id, 0, "Answer")
    await lease_lapse(reply_id)

    await cluster.heartbeat(instance)
    lost = await stored(reply_id)
    assert (lost.reasoning, lost.content) == ("First this, ", "Answer")  # the text goes on past the gap


# A follower never crosses a gap in the log.


async def test_a_follower_waits_at_a_gap_in_the_log_and_fills_it_from_the_stored_row(
    standin, replies_settle, other_instance_log, settings
):
    settings.CHAT_FLUSH_INTERVAL = 0.1  # how often a follower at a gap looks at the row
    flush = sync_to_async(replies.reply_flush)
    reply_id = await streaming_reply_store("gap", streamed_by=OTHER_INSTANCE)
    other_instance_log.start(reply_id)
    await log_write(other_instance_log, reply_id, 0, "abc")

    tab = await socket_open("/ws/chat/gap/")  # follows the other instance's reply
    assert tab.history["streaming"] == {"message_id": reply_id, "content": "abc", "offset": 3}
    await log_write(other_instance_log, reply_id, 6, "ghi")  # the entry of "def" never reached the log
    assert await tab.receive_nothing(timeout=0.5)  # "ghi" is not shown at offset 6 with 3 to 6 unknown

    assert await flush(reply_id=reply_id, content="abcde", streamed_by=OTHER_INSTANCE)
    assert await tab.receive_nothing(timeout=0.3)  # the row does not cover the gap yet
    assert await flush(reply_id=reply_id, content="abcdefg", streamed_by=OTHER_INSTANCE)
    frames = [await tab.receive_json_from(timeout=5) for _ in range(2)]
    await log_write(other_instance_log, reply_id, 9, "jkl")
    frames.append(await tab.receive_json_from(timeout=5))

    assert await sync_to_async(replies.reply_finish)(
        reply_id=reply_id,
        streamed_by=OTHER_INSTANCE,
        content="abcdefghijklmno",
        end=ReplyEnd(status=Message.Status.COMPLETE, finish_reason="stop"),
    )
    end = protocol.done_frame(message_id=reply_id, usage=None, finish_reason="stop")
    other_instance_log.end(reply_id, protocol.dumps(end))
    frames = await frames_until_end(tab, frames)

    assert [frame["offset"] for frame in frames if frame["type"] == "chunk"][:3] == [3, 6, 9]
    assert "abc" + text_after(3, frames) == "abcdefghijklmno"  # contiguous offsets, the row's text
    assert [frame for frame in frames if frame["type"] in ("done", "error")] == [end]
    assert await tab.receive_nothing(timeout=0.3)
    await tab.disconnect()


async def test_a_follower_at_a_gap_ends_from_the_row_when_the_writer_is_stored_as_lost(
    standin, replies_settle, other_instance_log, settings
):
    settings.CHAT_FLUSH_INTERVAL = 0.1
    reply_id = await streaming_reply_store("gap-lost", streamed_by=OTHER_INSTANCE)
    other_instance_log.start(reply_id)
    await log_write(other_instance_log, reply_id, 0, "abc")
    tab = await socket_open("/ws/chat/gap-lost/")
    await log_write(other_instance_log, reply_id, 6, "ghi")
    assert await sync_to_async(replies.reply_flush)(
        reply_id=reply_id, content="abcde", streamed_by=OTHER_INSTANCE
    )

    # The writer dies; the row is stored as lost with its last saved text (the log is not asked here).
    await sync_to_async(replies.reply_lost_store)(
        reply_id=reply_id, shown_text="", streamed_by=OTHER_INSTANCE
    )
    frames = await reply_collect(tab)

    assert "abc" + text_after(3, frames) == "abcde" == (await stored(reply_id)).content
    assert frames[-1] == {
        "type": "done",
        "message_id": reply_id,
        "usage": None,
        "finish_reason": "server_lost",
    }
    assert [frame["type"] for frame in frames].count("done") == 1
    assert await tab.receive_nothing(timeout=0.3)
    await tab.disconnect()


# The turn-start race: a socket joining between the turn's commit and its reply's registration.


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "one-process"])
async def test_a_tab_joining_while_a_turn_is_being_stored_gets_that_reply_once(
    standin, replies_settle, monkeypatch, settings, with_redis
):
    if not with_redis:
        settings.REDIS_URL = ""  # read when this test's event loop starts its instance
    turn_store = relay_turns._turn_store

    async def turn_store_then_pause(*args: Any, **kwargs: Any) -> Any:
        turn = await turn_store(*args, **kwargs)
        await asyncio.sleep(0.5)  # committed, while the room does not know its reply yet
        return turn

    monkeypatch.setattr(relay_turns, "_turn_store", turn_store_then_pause)
    first = await socket_open("/ws/chat/race/")
    assert ((await instances.instance_get()).redis is not None) == with_redis
    await first.send_json_to({"message": "race [[standin stamp=1 tokens=30 delay_ms=10]]"})

    async def reply_committed() -> bool:
        return await Message.objects.filter(status=Message.Status.STREAMING).aexists()

    await until(reply_committed, wait=5, interval=0.02)
    room = (await instances.instance_get()).rooms.find(ref_of("race"))
    assert room is not None
    assert room.reply is None  # the window is open: the row is committed, the room knows no reply
    second = await socket_open("/ws/chat/race/")

    frames_first = await reply_collect(first)
    frames_second = await reply_collect(second)
    reply_id = frames_first[0]["message_id"]
    streaming = second.history["streaming"]
    assert streaming["message_id"] == reply_id
    text_first = text_after(0, frames_first)
    text_second = streaming["content"] + text_after(streaming["offset"], frames_second)
    assert stamp_indices(text_first) == stamp_indices(text_second) == list(range(30))
    for frames in (frames_first, frames_second):
        assert [frame["type"] for frame in frames].count("done") == 1
        assert frames[-1]["finish_reason"] == "stop"
    assert await first.receive_nothing(timeout=0.3)
    assert await second.receive_nothing(timeout=0.1)
    reply = await stored(reply_id)
    assert (reply.status, reply.finish_reason, reply.content) == ("complete", "stop", text_first)
    assert len(standin.requests()) == 1
    await first.disconnect()
    await second.disconnect()


# A reply stored as lost is fenced in its log: the frozen writer's late appends land before or never.


async def test_a_fenced_log_refuses_its_writers_late_text_and_tools_and_says_so(other_instance_log):
    reply_id = 990_001
    taker_client = redis_asyncio.Redis.from_url(django_settings.REDIS_URL)
    taker = replylog.RedisReplyLog(taker_client)
    try:
        other_instance_log.start(reply_id)
        assert await other_instance_log.text(reply_id, 0, "shown and stored") is True
        assert (await taker.fenced_shown(reply_id)).text == "shown and stored"

        late = other_instance_log.text(reply_id, 16, " after the takeover")
        other_instance_log.frame(reply_id, '{"type": "tool"}')
        assert await late is False  # the writer shows its tabs none of it
        await other_instance_log.drained()
        entries = await taker.read(reply_id, "0-0")
        assert [entry.kind for entry in entries] == ["text", "text"]  # start and the text before the fence
        assert await replylog.log_text(taker_client, reply_id) == "shown and stored"

        taker.end(reply_id, '{"type": "done"}')  # the taker's own end is not fenced
        await taker.drained()
        assert (await taker.read(reply_id, "0-0"))[-1].kind == "end"

        await taker.unfence(reply_id)  # not lost after all: the writer logs again
        assert await other_instance_log.text(reply_id, 16, " renewed") is True
    finally:
        await taker_client.delete(replylog.log_key(reply_id), replylog.fence_key(reply_id))
        await taker.close()
        await taker_client.aclose()
