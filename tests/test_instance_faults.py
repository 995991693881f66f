"""Faults of whole server processes (Daphne instances) and of their Redis: a SIGTERM leaves the tabs
already open able to act, and a Redis restart mid-reply drops no tab and no text.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Conversation, Message
from conversations.owners import Owner

from .processes import DaphneServer
from .servers import ChatClient, page_session_headers, text_after, until

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
    usage = frames[-1].pop("usage")  # the API counted nothing: the stored estimate
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert frames[-1] == {
        "type": "done",
        "message_id": start["message_id"],
        "finish_reason": "stopped",
        "served_models": ["openai/gpt-5.1"],  # what its stream had named when it stopped
    }
    reply = await stored_reply(start["message_id"])
    assert (reply.status, reply.finish_reason) == ("interrupted", "stopped")
    assert reply.content == text_after(0, frames)
    assert not await Message.objects.filter(content="one more").aexists()
    assert a.wait(15) == 0
    await tab.close()


@pytest.mark.parametrize("event_bus", ["redis", "channels-redis"])  # instances_started's
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


@pytest.mark.parametrize("event_bus", ["redis", "channels-redis"])  # instances_started's
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


async def test_a_client_that_stops_reading_is_closed_before_the_server_holds_its_backlog(
    instances_started, http, standin
):
    a, _b = instances_started(CHAT_MAX_UNSENT_BYTES="300000")
    headers = await page_session_headers(http, a.origin)
    owner_key = Owner(session_key=headers["Cookie"].split("=", 1)[1]).key
    await sync_to_async(big_history_store)(owner_key, "unread")
    log_start = a.log.stat().st_size
    reader, writer = await raw_socket_open(a, "/ws/chat/unread/", headers)
    # Each asks for ~500 KB and nothing is read: past what the kernel's buffers take (a few MB), the rest
    # would wait in the server's own buffer.
    for _ in range(30):
        writer.write(masked_text_frame(b'{"type": "history"}'))
    await writer.drain()

    def refused_in_log() -> bool:
        return b"closing a socket whose client does not read" in a.log.read_bytes()[log_start:]

    assert await until(lambda: asyncio.sleep(0, refused_in_log()), wait=15)
    received = 0
    with contextlib.suppress(ConnectionResetError):  # the server drops the connection and its backlog
        async with asyncio.timeout(15):
            while chunk := await reader.read(1 << 20):
                received += len(chunk)
    assert received < 30 * 600_000  # it did not get every history it asked for
    writer.close()
    tab = await ChatClient(http, a, "unread").connect()  # a client that reconnects goes on
    assert tab.history["messages"]


async def raw_socket_open(
    server: DaphneServer, path: str, headers: dict[str, str]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client that reads nothing after the handshake, with a small receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = await reader.readuntil(b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 101"), response
    return reader, writer


def masked_text_frame(payload: bytes) -> bytes:
    """One client text frame (clients mask theirs), for a payload under 126 bytes."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def big_history_store(owner_key: str, session_id: str) -> None:
    """A conversation whose history frame is about 600 KB."""
    conversation = Conversation.objects.create(owner_key=owner_key, session_id=session_id)
    parent = None
    for n in range(10):
        parent = Message.objects.create(
            conversation=conversation,
            parent=parent,
            role="user" if n % 2 == 0 else "assistant",
            content="w" * 60_000,
        )
    conversation.current_message = parent
    conversation.save()
