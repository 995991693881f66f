"""A socket survives whatever a frame or a failure inside the server does to it: unstorable text is made
storable where it enters, an unexpected error becomes `internal_error` on a socket that stays open, and
a socket's slot is released on every way out."""

from __future__ import annotations

import pytest
import redis
from channels.testing import WebsocketCommunicator
from django.db import DataError

from chatproject.asgi import application
from conversations import upstream
from conversations.chat import replies
from conversations.models import Message
from conversations.relay import instance
from conversations.relay import sockets as relay_sockets

from .chat_sockets import (
    browser_owner_key,
    chunks_text,
    reply_collect,
    socket_open,
    suite_browser_handshake_headers,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def assert_still_chats(communicator: WebsocketCommunicator) -> None:
    await communicator.send_json_to({"message": "still there?"})
    frames = await reply_collect(communicator)
    assert frames[-1]["type"] == "done", frames[-1]
    assert "still there?" in chunks_text(frames)


async def test_a_nul_in_a_message_is_dropped_where_it_enters_and_the_reply_streams(chat_socket):
    await chat_socket.send_json_to({"message": "hel\u0000lo"})
    frames = await reply_collect(chat_socket)
    assert frames[0]["user_message"]["content"] == "hello"
    assert frames[-1]["type"] == "done"
    assert await Message.objects.filter(role="user", content="hello").aexists()
    await assert_still_chats(chat_socket)


async def test_a_nul_in_the_models_reply_and_tool_result_is_stored_and_the_reply_ends(chat_socket):
    await chat_socket.send_json_to({"message": "[[standin reply=a%00b%20c tool=se%00arch]]"})
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done", frames[-1]
    assert chunks_text(frames) == "ab c"
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.content) == ("complete", "ab c")
    assert {tool["name"] for tool in reply.tools} == {"search"}
    await assert_still_chats(chat_socket)


async def test_a_nul_in_an_mcp_url_is_refused_and_the_socket_stays_usable(chat_socket, standin):
    await chat_socket.send_json_to({"message": "hi", "mcp_servers": ["https://mcp.example.com/\u0000x"]})
    frame = await chat_socket.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "invalid_mcp_server")
    assert await Message.objects.acount() == 0
    await assert_still_chats(chat_socket)


@pytest.fixture
def socket_counts(settings):
    """Sockets per owner counted in the shared Redis, from zero; returns the owner's count now."""
    settings.CHAT_MAX_SOCKETS_PER_OWNER = 3
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"{settings.CHAT_REDIS_PREFIX}:sockets:{browser_owner_key()}"
    client.delete(key)
    yield lambda: client.zcard(key)
    client.delete(key)
    client.close()


async def test_an_unexpected_error_on_a_frame_is_internal_error_and_the_socket_stays_open(
    chat_socket, monkeypatch, caplog
):
    async def broken(*args, **kwargs):
        raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(relay_sockets, "history_send", broken)
    await chat_socket.send_json_to({"type": "history"})
    frame = await chat_socket.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "internal_error")
    assert "a bug in a handler" not in frame["message"]
    assert any("a bug in a handler" in (r.exc_text or "") for r in caplog.records)  # the traceback is kept
    monkeypatch.undo()
    await assert_still_chats(chat_socket)


async def test_sockets_that_crash_while_opening_release_their_slot(
    standin, replies_settle, monkeypatch, socket_counts
):
    async def broken(*args, **kwargs):
        raise RuntimeError("a bug while joining")

    monkeypatch.setattr(relay_sockets, "conversation_join", broken)
    for n in range(5):  # more than the owner's maximum of 3
        communicator = WebsocketCommunicator(
            application, f"/ws/chat/crash{n}/", headers=await suite_browser_handshake_headers()
        )
        assert (await communicator.connect())[0]
        frame = await communicator.receive_json_from()
        assert frame["code"] == "internal_error"
        assert (await communicator.receive_output())["type"] == "websocket.close"
        await communicator.wait()
    assert socket_counts() == 0
    monkeypatch.undo()
    sockets = [await socket_open(f"/ws/chat/after{n}/") for n in range(3)]
    assert socket_counts() == 3
    for communicator in sockets:
        await communicator.disconnect()
    assert socket_counts() == 0


async def test_a_socket_whose_handler_crashes_and_then_drops_releases_its_slot(
    standin, replies_settle, monkeypatch, socket_counts
):
    async def broken(*args, **kwargs):
        raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(relay_sockets, "history_send", broken)
    for n in range(5):
        communicator = await socket_open(f"/ws/chat/drop{n}/")
        await communicator.send_json_to({"type": "history"})
        assert (await communicator.receive_json_from())["code"] == "internal_error"
        await communicator.disconnect()
    assert socket_counts() == 0
    assert not (await instance.instance_get()).sockets


@pytest.fixture
def finish_refused_once(monkeypatch):
    """The first store of a reply's end is refused by the database (as a value it cannot take would be)."""
    real = replies.reply_finish
    calls = []

    def refusing(**fields):
        calls.append(fields)
        if len(calls) == 1:
            raise DataError("a value the database refuses")
        return real(**fields)

    monkeypatch.setattr(replies, "reply_finish", refusing)
    return calls


async def test_an_end_the_database_refuses_is_stored_as_internal_error_with_its_text(
    chat_socket, finish_refused_once
):
    await chat_socket.send_json_to({"message": "keep this [[standin tokens=5]]"})
    frames = await reply_collect(chat_socket)
    ends = [frame for frame in frames if frame["type"] in ("done", "error")]
    assert [(end["type"], end.get("code")) for end in ends] == [("error", "internal_error")]
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.error_code) == ("error", "internal_error")
    assert reply.content == chunks_text(frames)
    assert len(finish_refused_once) == 2
    await assert_still_chats(chat_socket)


async def test_a_reply_that_failed_unexpectedly_and_whose_end_is_refused_still_ends_once(
    chat_socket, finish_refused_once, monkeypatch
):
    async def broken_stream(*args, **kwargs):
        raise RuntimeError("a bug before the first token")
        yield  # an async generator, as the real one

    monkeypatch.setattr(upstream, "reply_stream", broken_stream)
    for _ in range(2):  # the second reply meets the same failure path: nothing the first did may leak
        await chat_socket.send_json_to({"message": "this fails"})
        frames = await reply_collect(chat_socket)
        assert (frames[-1]["type"], frames[-1]["code"]) == ("error", "internal_error")
    assert await Message.objects.filter(role="assistant", status="error").acount() == 2
