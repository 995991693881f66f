"""Per-owner limits: message rate, daily tokens, open sockets, frame size, MCP servers, internal hosts."""

from __future__ import annotations

import pytest
import redis
from channels.testing import WebsocketCommunicator

from chatproject.asgi import application
from conversations.models import MCPServerPreset, Message
from conversations.relay import cluster
from conversations.relay import instance as instances

from .chat_sockets import browser_owner_key, reply_collect, socket_open, suite_browser_handshake_headers
from .redis_keys import limits_forget

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_limits_clean():
    """Rate-limit and socket counters live in the shared Redis: start each test from zero."""
    limits_forget(sockets=True)


async def test_the_message_rate_limit_trips_at_the_configured_number(
    chat_socket, standin, settings, redis_limits_clean
):
    settings.CHAT_RATE_LIMIT = "3/minute"
    for n in range(3):
        await chat_socket.send_json_to({"message": f"m{n}"})
        assert (await reply_collect(chat_socket))[-1]["type"] == "done"
    await chat_socket.send_json_to({"message": "one too many"})
    frame = await chat_socket.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "rate_limited")
    assert 0 < frame["retry_after"] <= 60
    assert not await Message.objects.filter(content="one too many").aexists()
    assert len(standin.requests()) == 3


async def test_the_daily_token_quota_trips_once_used_up(chat_socket, standin, settings):
    settings.CHAT_DAILY_TOKEN_QUOTA = 20
    await chat_socket.send_json_to({"message": "spend [[standin tokens=25]]"})
    done = (await reply_collect(chat_socket))[-1]
    assert done["usage"]["total_tokens"] >= 20
    await chat_socket.send_json_to({"message": "more please"})
    frame = await chat_socket.receive_json_from()
    assert (frame["code"], frame["type"]) == ("quota_exceeded", "error")
    assert frame["retry_after"] > 0
    assert not await Message.objects.filter(content="more please").aexists()


async def test_a_socket_over_the_owners_maximum_is_refused(
    standin, replies_settle, settings, redis_limits_clean
):
    settings.CHAT_MAX_SOCKETS_PER_OWNER = 2
    first, second = await socket_open("/ws/chat/s1/"), await socket_open("/ws/chat/s2/")
    third = WebsocketCommunicator(
        application, "/ws/chat/s3/", headers=await suite_browser_handshake_headers()
    )
    assert (await third.connect())[0]
    frame = await third.receive_json_from()
    assert frame["code"] == "too_many_sockets"
    assert await third.receive_output() == {"type": "websocket.close", "code": 4429}

    await first.disconnect()  # a closed socket frees its place
    fourth = await socket_open("/ws/chat/s4/")
    await second.disconnect()
    await fourth.disconnect()


async def test_the_heartbeat_renews_every_open_socket_of_an_owner_and_its_count_key(
    standin, replies_settle, settings, redis_limits_clean
):
    settings.CHAT_MAX_SOCKETS_PER_OWNER = 5
    tabs = [await socket_open(f"/ws/chat/renewed{n}/") for n in range(3)]
    instance = await instances.instance_get()
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"{settings.CHAT_REDIS_PREFIX}:sockets:{browser_owner_key()}"
    try:
        entries = dict(client.zrange(key, 0, -1, withscores=True))
        assert len(entries) == 3
        client.zadd(key, {member: score - 60 for member, score in entries.items()}, xx=True)
        client.expire(key, 5)  # as if the last renewal were long ago

        await cluster.heartbeat(instance)

        renewed = dict(client.zrange(key, 0, -1, withscores=True))
        assert renewed.keys() == entries.keys()
        assert all(renewed[member] >= entries[member] for member in entries)
        assert client.ttl(key) > 5
    finally:
        client.close()
        for tab in tabs:
            await tab.disconnect()


async def test_an_oversized_frame_is_refused_as_too_long_and_stores_nothing(chat_socket, settings):
    settings.CHAT_MAX_FRAME_BYTES = 1000
    await chat_socket.send_json_to({"message": "é" * 600})  # 600 characters, 1200 bytes
    frame = await chat_socket.receive_json_from()
    assert frame["code"] == "message_too_long"
    assert await Message.objects.acount() == 0


async def test_too_many_mcp_servers_are_refused(chat_socket, settings):
    settings.CHAT_MAX_MCP_SERVERS = 2
    await chat_socket.send_json_to({"message": "x", "mcp_servers": ["a/b", "c/d", "e/f"]})
    assert (await chat_socket.receive_json_from())["code"] == "invalid_mcp_server"


@pytest.mark.parametrize(
    "target",
    [
        "https://127.0.0.1/mcp",
        "https://localhost:8443/mcp",
        "https://10.0.0.5/mcp",
        "https://192.168.1.20/sse",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/mcp",
        "https://[::ffff:10.0.0.1]/mcp",
        "https://intranet/mcp",
        "https://tools.internal/mcp",
        "https://printer.local/mcp",
    ],
)
async def test_internal_hosts_are_refused_as_mcp_servers(chat_socket, standin, target):
    await chat_socket.send_json_to({"message": "x", "mcp_servers": [target]})
    frame = await chat_socket.receive_json_from()
    assert frame["code"] == "invalid_mcp_server"
    assert "private" in frame["message"]
    assert standin.requests() == []


async def test_an_internal_host_offered_as_an_admin_preset_is_allowed(chat_socket, standin):
    await MCPServerPreset.objects.acreate(label="Internal tools", target="https://tools.internal/mcp")
    await chat_socket.send_json_to({"message": "x", "mcp_servers": ["https://tools.internal/mcp"]})
    assert (await reply_collect(chat_socket))[-1]["type"] == "done"
    assert standin.requests()[0]["body"]["mcp_servers"] == ["https://tools.internal/mcp"]


async def test_the_api_key_never_reaches_an_error_frame_or_a_log(chat_socket, standin, settings, caplog):
    settings.DEDALUS_API_KEY = "dsk-live-0123456789abcdef-secret"
    settings.CHAT_UPSTREAM_MAX_RETRIES = 0
    standin.script({"status": 401, "echo_auth": 1})
    caplog.set_level("DEBUG")
    await chat_socket.send_json_to({"message": "x"})
    frames = await reply_collect(chat_socket)
    assert frames[-1]["code"] == "upstream_error"
    assert "[redacted]" in frames[-1]["message"]
    stored = await Message.objects.aget(pk=frames[0]["message_id"])
    for text in (str(frames), stored.error, caplog.text):
        assert "dsk-live" not in text
        assert "0123456789abcdef" not in text
