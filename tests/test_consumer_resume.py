"""Resends, resyncs and tabs on one instance: no duplicate message, no lost or repeated text."""

from __future__ import annotations

import pytest

from conversations.models import Message

from .chat_sockets import chunks_text, reply_collect, socket_open

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_resent_client_id_creates_no_second_message_or_reply(chat_socket, standin):
    frame = {"message": "only once", "client_id": "c-123"}
    await chat_socket.send_json_to(frame)
    frames = await reply_collect(chat_socket)
    assert frames[0]["user_message"]["client_id"] == "c-123"

    await chat_socket.send_json_to(frame)  # e.g. resent after a reconnect
    duplicate = await chat_socket.receive_json_from()
    assert duplicate == {
        "type": "duplicate",
        "client_id": "c-123",
        "message_id": frames[0]["user_message"]["id"],
    }
    assert await Message.objects.filter(content="only once").acount() == 1
    assert await Message.objects.filter(role="assistant").acount() == 1
    assert len(standin.requests()) == 1


async def test_a_resend_while_its_reply_still_streams_is_a_duplicate_not_busy(chat_socket, standin):
    frame = {"message": "slow [[standin tokens=40 delay_ms=10]]", "client_id": "c-9"}
    await chat_socket.send_json_to(frame)
    start = await chat_socket.receive_json_from()
    await chat_socket.send_json_to(frame)
    frames = await reply_collect(chat_socket)
    duplicates = [f for f in frames if f["type"] == "duplicate"]
    assert duplicates == [
        {"type": "duplicate", "client_id": "c-9", "message_id": start["user_message"]["id"]}
    ]
    assert frames[-1]["type"] == "done"


async def test_a_bad_client_id_is_refused(chat_socket):
    await chat_socket.send_json_to({"message": "x", "client_id": "has spaces"})
    assert (await chat_socket.receive_json_from())["code"] == "invalid_message"


async def test_resync_resends_the_missing_span_in_bounded_pages(chat_socket, standin, settings):
    settings.CHAT_RESYNC_PAGE_CHARS = 7
    await chat_socket.send_json_to({"message": "resync me"})
    frames = await reply_collect(chat_socket)
    text, reply_id = chunks_text(frames), frames[0]["message_id"]

    await chat_socket.send_json_to({"type": "resync", "message_id": reply_id, "offset": 5})
    resent = await reply_collect(chat_socket)
    chunks = [f for f in resent if f["type"] == "chunk"]
    assert all(len(f["content"]) <= 7 for f in chunks)
    assert [f["offset"] for f in chunks] == list(range(5, len(text), 7))
    assert "".join(f["content"] for f in chunks) == text[5:]
    assert resent[-1] == {
        "type": "done",
        "message_id": reply_id,
        "usage": frames[-1]["usage"],
        "finish_reason": "stop",
        "served_models": ["openai/gpt-5.1"],
    }


async def test_resync_of_a_streaming_reply_sends_its_text_so_far(chat_socket, standin):
    await chat_socket.send_json_to({"message": "going [[standin tokens=100 delay_ms=10]]"})
    start = await chat_socket.receive_json_from()
    await chat_socket.receive_json_from()
    await chat_socket.send_json_to({"type": "resync", "message_id": start["message_id"], "offset": 0})
    frames = await reply_collect(chat_socket)
    # The resent span starts at 0 and the live chunks continue from wherever the text was then.
    assert any(f["type"] == "chunk" and f["offset"] == 0 for f in frames)
    assert frames[-1]["type"] == "done"


async def test_resync_of_a_reply_of_another_conversation_is_refused(standin, replies_settle):
    owner = await socket_open("/ws/chat/owner/")
    await owner.send_json_to({"message": "private"})
    frames = await reply_collect(owner)
    other = await socket_open("/ws/chat/other/")
    await other.send_json_to({"type": "resync", "message_id": frames[0]["message_id"], "offset": 0})
    assert (await other.receive_json_from())["code"] == "invalid_message"
    await owner.disconnect()
    await other.disconnect()


async def test_stop_from_a_second_tab_ends_the_upstream_request(standin, replies_settle):
    tab1 = await socket_open("/ws/chat/two-tabs/")
    tab2 = await socket_open("/ws/chat/two-tabs/")
    await tab1.send_json_to({"message": "long [[standin tokens=500 delay_ms=10]]"})
    start = await tab2.receive_json_from()
    first = await tab2.receive_json_from()
    await tab2.send_json_to({"type": "stop"})
    frames1, frames2 = await reply_collect(tab1), [start, first, *await reply_collect(tab2)]
    assert frames1[-1]["finish_reason"] == frames2[-1]["finish_reason"] == "stopped"
    reply = await Message.objects.aget(pk=start["message_id"])
    assert (reply.status, reply.content) == ("interrupted", chunks_text(frames2))
    assert standin.requests()[0]["outcome"] == "client_disconnected"
    await tab1.disconnect()
    await tab2.disconnect()


async def test_joining_mid_reply_gets_the_text_so_far_then_exactly_the_rest(standin, replies_settle):
    tab1 = await socket_open("/ws/chat/late/")
    await tab1.send_json_to({"message": "x [[standin tokens=80 delay_ms=10]]"})
    for _ in range(10):
        await tab1.receive_json_from()
    tab2 = await socket_open("/ws/chat/late/")
    streaming = tab2.history["streaming"]
    rest = await reply_collect(tab2)
    offset = streaming["offset"]
    for frame in rest[:-1]:
        assert frame["offset"] == offset
        offset += len(frame["content"])
    full = chunks_text(await reply_collect(tab1))
    reply = await Message.objects.aget(pk=streaming["message_id"])
    assert streaming["content"] + chunks_text(rest) == reply.content
    assert reply.content.endswith(full)
    await tab1.disconnect()
    await tab2.disconnect()


async def test_a_message_from_a_second_tab_while_the_first_tabs_reply_streams_is_busy(
    standin, replies_settle
):
    tab1 = await socket_open("/ws/chat/busy-tabs/")
    tab2 = await socket_open("/ws/chat/busy-tabs/")
    await tab1.send_json_to({"message": "long [[standin tokens=80 delay_ms=10]]"})
    assert (await tab2.receive_json_from())["type"] == "start"
    await tab2.send_json_to({"message": "me too"})
    frames = await reply_collect(tab2)
    refusals = [f for f in frames if f["type"] == "error"]
    assert [f["code"] for f in refusals] == ["busy"]
    assert "message_id" not in refusals[0]
    assert (await reply_collect(tab2))[-1]["type"] == "done"
    assert (await reply_collect(tab1))[-1]["type"] == "done"
    assert not await Message.objects.filter(content="me too").aexists()
    await tab1.disconnect()
    await tab2.disconnect()


async def test_a_tab_joining_mid_reply_sees_the_tool_activity_so_far(chat_socket, standin):
    await chat_socket.send_json_to(
        {"message": "look it up [[standin tool=web_search tokens=80 delay_ms=10]]", "mcp_servers": ["acme/s"]}
    )
    frames = [await chat_socket.receive_json_from()]
    while sum(frame["type"] == "tool" for frame in frames) < 2:
        frames.append(await chat_socket.receive_json_from())

    joiner = await socket_open("/ws/chat/t1/")
    streaming = joiner.history["streaming"]
    assert streaming is not None  # still being written
    (shown,) = [m for m in joiner.history["messages"] if m["id"] == streaming["message_id"]]
    assert [(t["phase"], t["name"]) for t in shown["tools"]] == [
        ("call", "web_search"),
        ("result", "web_search"),
    ]
    assert shown["tools"][1]["server"] == "acme/s"
    await reply_collect(joiner)
    await joiner.disconnect()
