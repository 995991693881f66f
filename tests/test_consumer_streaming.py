"""The chat socket end to end: real ASGI app, real Postgres, real HTTP to the stand-in."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis_asyncio

from conversations.models import Conversation, Message
from conversations.redisclient import redis_client
from conversations.relay.backends import replylog
from conversations.relay.instance import instance_get

from .chat_sockets import chunks_text, reply_collect, socket_open

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_message_streams_start_chunks_done_and_is_stored(chat_socket, standin):
    await chat_socket.send_json_to({"message": "hello there", "model": "openai/gpt-5.1"})
    frames = await reply_collect(chat_socket)

    start, *chunks, done = frames
    assert start["type"] == "start"
    assert start["model"] == "openai/gpt-5.1"
    assert start["user_message"]["content"] == "hello there"
    assert chunks
    assert all(frame["type"] == "chunk" for frame in chunks)
    assert done == {
        "type": "done",
        "message_id": start["message_id"],
        "usage": done["usage"],
        "finish_reason": "stop",
        "served_models": ["openai/gpt-5.1"],  # the model the stream's chunks named
    }
    assert done["usage"]["completion_tokens"] == 12

    text = chunks_text(frames)
    assert text.startswith("You asked: “hello there”. ")
    offsets = [frame["offset"] for frame in chunks]
    assert offsets == [sum(len(f["content"]) for f in chunks[:i]) for i in range(len(chunks))]

    reply = await Message.objects.aget(pk=start["message_id"])
    assert (reply.role, reply.status, reply.content) == ("assistant", "complete", text)
    assert reply.total_tokens == done["usage"]["total_tokens"]
    user = await Message.objects.filter(role="user").aget()
    assert user.content == "hello there"
    assert user.created_at <= reply.created_at


async def test_the_original_page_path_speaks_the_same_protocol(standin, replies_settle):
    communicator = await socket_open("/ws/legacy-session")
    await communicator.send_json_to({"message": "from the old page"})
    frames = await reply_collect(communicator)
    assert [frames[0]["type"], frames[-1]["type"]] == ["start", "done"]
    assert "from the old page" in chunks_text(frames)
    assert await Conversation.objects.filter(session_id="legacy-session").aexists()
    await communicator.disconnect()


async def test_reconnecting_shows_the_stored_conversation(chat_socket, standin):
    await chat_socket.send_json_to({"message": "remember me"})
    frames = await reply_collect(chat_socket)
    await chat_socket.disconnect()

    again = await socket_open("/ws/chat/t1/")
    history = again.history
    assert history["session_id"] == "t1"
    assert [(m["role"], m["status"]) for m in history["messages"]] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert history["messages"][0]["content"] == "remember me"
    assert history["messages"][1]["content"] == chunks_text(frames)
    assert history["conversation"]["title"] == "remember me"
    assert "streaming" not in history
    await again.disconnect()


async def test_the_second_turn_sends_the_whole_history_upstream(chat_socket, standin):
    await chat_socket.send_json_to({"message": "first"})
    first = chunks_text(await reply_collect(chat_socket))
    await chat_socket.send_json_to({"message": "second"})
    await reply_collect(chat_socket)

    bodies = [request["body"] for request in standin.requests()]
    assert len(bodies) == 2
    assert bodies[1]["messages"] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "second"},
    ]


async def test_model_and_mcp_servers_reach_the_upstream_request(chat_socket, standin):
    servers = ["acme/search", "https://mcp.example.com/sse"]
    await chat_socket.send_json_to(
        {"message": "use tools", "model": "anthropic/claude-opus-4-5-20251101", "mcp_servers": servers}
    )
    frames = await reply_collect(chat_socket)
    assert frames[0]["model"] == "anthropic/claude-opus-4-5-20251101"

    (request,) = standin.requests()
    assert request["body"]["model"] == "anthropic/claude-opus-4-5-20251101"
    assert request["body"]["mcp_servers"] == servers
    assert request["headers"]["authorization"] == "Bearer test-key"
    conversation = await Conversation.objects.aget(session_id="t1")
    assert (conversation.model, conversation.mcp_servers) == ("anthropic/claude-opus-4-5-20251101", servers)


async def test_a_later_message_without_model_keeps_the_conversations_model(chat_socket, standin):
    await chat_socket.send_json_to(
        {"message": "one", "model": "google/gemini-3-pro-preview", "mcp_servers": ["a/b"]}
    )
    await reply_collect(chat_socket)
    await chat_socket.send_json_to({"message": "two"})
    frames = await reply_collect(chat_socket)
    assert frames[0]["model"] == "google/gemini-3-pro-preview"
    assert standin.requests()[1]["body"]["mcp_servers"] == ["a/b"]


async def test_tool_activity_is_relayed_and_stored(chat_socket, standin):
    await chat_socket.send_json_to(
        {"message": "search [[standin tool=web_search]]", "mcp_servers": ["acme/search"]}
    )
    frames = await reply_collect(chat_socket)
    tools = [frame for frame in frames if frame["type"] == "tool"]
    assert [(t["phase"], t["name"]) for t in tools] == [("call", "web_search"), ("result", "web_search")]
    assert tools[1]["server"] == "acme/search"
    assert tools[1]["duration_ms"] == 3  # how long the server-side tool ran, as the API said
    reply = await Message.objects.aget(pk=frames[0]["message_id"])
    assert [t["name"] for t in reply.tools] == ["web_search", "web_search"]


async def test_disconnecting_mid_stream_does_not_cut_the_reply_short(standin, replies_settle):
    first = await socket_open("/ws/chat/gone/")
    await first.send_json_to({"message": "keep going [[standin tokens=60 delay_ms=10]]"})
    start = await first.receive_json_from(timeout=5)
    await first.receive_json_from(timeout=5)  # one chunk, then the tab closes
    await first.disconnect()

    second = await socket_open("/ws/chat/gone/")
    streaming = second.history.get("streaming")
    assert streaming is not None
    assert streaming["message_id"] == start["message_id"]
    text = streaming["content"]
    expected_offset = streaming["offset"]
    while True:
        frame = await second.receive_json_from(timeout=10)
        if frame["type"] == "done":
            break
        assert frame["type"] == "chunk"
        assert frame["offset"] == expected_offset
        text += frame["content"]
        expected_offset += len(frame["content"])

    reply = await Message.objects.aget(pk=start["message_id"])
    assert reply.status == "complete"
    assert reply.content == text
    assert reply.completion_tokens == 60
    (request,) = standin.requests()
    assert (request["outcome"], request["tokens_sent"]) == ("completed", 60)
    await second.disconnect()


@pytest.mark.parametrize(("interval_ms", "frames_allowed"), [(0, range(20, 41)), (50, range(1, 9))])
async def test_chunk_frames_go_out_at_most_once_per_chunk_interval(
    chat_socket, standin, settings, interval_ms, frames_allowed
):
    """40 tokens 5 ms apart: a frame per token without an interval (nor a batching wait of the reply
    log, whose writes a frame waits for); with 50 ms, the text that arrives while a frame waits leaves in
    the next one (about 200 ms / 50 ms frames), whole and in order."""
    settings.CHAT_CHUNK_INTERVAL_MS = interval_ms
    if not interval_ms:
        settings.CHAT_REPLY_LOG_BATCH_MS = 0
    await chat_socket.send_json_to({"message": "fast [[standin tokens=40 delay_ms=5]]"})
    frames = await reply_collect(chat_socket)

    chunks = [frame for frame in frames if frame["type"] == "chunk"]
    assert len(chunks) in frames_allowed, len(chunks)
    offsets = [frame["offset"] for frame in chunks]
    assert offsets == [sum(len(f["content"]) for f in chunks[:i]) for i in range(len(chunks))]
    reply = await Message.objects.aget(pk=frames[0]["message_id"])
    assert reply.content == chunks_text(frames)
    assert frames[-1]["usage"]["completion_tokens"] == 40


async def log_text_since(client: redis_asyncio.Redis, reply_id: int, since: str) -> str:
    """The text a reply's log holds in its entries after entry id `since`, up to the first gap."""
    text = ""
    for entry in await replylog.log_read(client, reply_id, since):
        if entry.kind != "text":
            continue
        if entry.offset > len(text):
            break
        text += entry.text[len(text) - entry.offset :]
    return text


async def test_a_tab_is_shown_only_text_the_reply_log_already_holds(standin, replies_settle, settings):
    """Shown means durable: every chunk a tab gets is already in the reply log that another instance
    stores a lost reply from, however far the log's writes lag behind the upstream's tokens; the first
    text does not wait for the log's batching."""
    if not settings.REDIS_URL:
        pytest.skip("the reply log is shared only through Redis")
    settings.CHAT_REPLY_LOG_BATCH_MS = 400  # each log write lags far behind the tokens it carries
    message = f"durable {uuid.uuid4().hex} [[standin tokens=30 delay_ms=10]]"
    tab = await socket_open("/ws/chat/durable/")
    client = redis_asyncio.Redis.from_url(settings.REDIS_URL)
    try:
        seconds, micros = await client.time()
        since = f"{seconds * 1000 + micros // 1000 - 1}-0"  # an earlier run's log under the same id is older
        await tab.send_json_to({"message": message})
        start = await tab.receive_json_from(timeout=10)
        assert start["type"] == "start"
        started = time.monotonic()
        first_chunk_after: float | None = None
        frames = [start]
        while frames[-1]["type"] not in ("done", "error"):
            frame = await tab.receive_json_from(timeout=10)
            frames.append(frame)
            if frame["type"] != "chunk":
                continue
            first_chunk_after = first_chunk_after or time.monotonic() - started
            logged = await log_text_since(client, start["message_id"], since)
            end = frame["offset"] + len(frame["content"])
            assert logged[frame["offset"] : end] == frame["content"], (frame, logged)
    finally:
        await client.aclose()
    assert frames[-1]["type"] == "done"
    assert first_chunk_after is not None
    assert first_chunk_after < 0.3  # not held for the 400 ms batch
    reply = await Message.objects.aget(pk=start["message_id"])
    assert reply.content == chunks_text(frames)
    await tab.disconnect()


@pytest.fixture
async def reply_log_hung(settings) -> AsyncIterator[None]:
    """This process's reply log writes to a Redis that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    settings.CHAT_REDIS_TIMEOUT = 5.0
    silent = redis_client(f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0")
    log = (await instance_get()).reply_log
    assert isinstance(log, replylog.RedisReplyLog)
    log.client, kept = silent, log.client
    yield
    log.client = kept
    for writer in held:
        writer.close()
    server.close()
    await silent.aclose()


async def test_a_reply_whose_log_hangs_reaches_its_tab_as_the_database_stores_it(
    standin, replies_settle, settings, reply_log_hung
):
    """Text the log cannot take in CHAT_REPLY_LOG_WAIT_SECONDS is shown once the database holds it (at
    once, then every flush), never before, and the reply is not held for the Redis command timeout."""
    if not settings.REDIS_URL:
        pytest.skip("the reply log is shared only through Redis")
    settings.CHAT_REPLY_LOG_WAIT_SECONDS, settings.CHAT_FLUSH_INTERVAL = 0.2, 0.2
    tab = await socket_open("/ws/chat/hung-log/")
    await tab.send_json_to({"message": "hung [[standin tokens=30 delay_ms=20]]"})
    started = time.monotonic()
    frames = [await tab.receive_json_from(timeout=10)]
    while frames[-1]["type"] not in ("done", "error"):
        frames.append(await tab.receive_json_from(timeout=10))
        if frames[-1]["type"] == "chunk":
            stored = await Message.objects.aget(pk=frames[0]["message_id"])
            assert stored.content.startswith(chunks_text(frames)), (stored.content, chunks_text(frames))
    assert time.monotonic() - started < 4  # the hung writes (5 s each) held nothing
    assert frames[-1]["type"] == "done"
    assert len([frame for frame in frames if frame["type"] == "chunk"]) >= 2  # not all at the end
    reply = await Message.objects.aget(pk=frames[0]["message_id"])
    assert reply.content == chunks_text(frames)
    await tab.disconnect()
