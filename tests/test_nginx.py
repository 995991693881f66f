"""deploy/nginx.conf in front of two Daphne instances: HTTP and WebSockets through the proxy, and a client
whose reconnect lands on the other instance resumes its reply exactly.

nginx runs from the deploy file itself (its upstream ports, listen address and access log swapped for the
test's), in a prefix of its own under test-artifacts/, as a foreground process.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from chatproject.request_bodies import body_limit
from conversations.models import Message

from .instances import instance_env
from .processes import (
    NGINX_SITE,
    ROOT,
    SERVE_FLAGS,
    DaphneServer,
    Nginx,
    RedisServer,
    servers_start,
    servers_stop,
)
from .servers import ChatClient, form_headers, stamp_indices, text_after, until
from .standin_control import StandIn

pytestmark = pytest.mark.subprocess


def wsconnects(server: DaphneServer, session_id: str) -> int:
    """How many sockets of this conversation the instance has accepted (Daphne's access log)."""
    return server.output().count(f'"WSCONNECT /ws/chat/{session_id}/"')


@pytest.fixture(scope="module")
def proxied(
    standin_server: StandIn, django_db_setup: None
) -> Iterator[tuple[DaphneServer, DaphneServer, Nginx]]:
    """Instances A and B on the test database and a Redis of their own, behind nginx, for the module's
    tests (none stops or reconfigures them; the module's other tests use no database); all stopped after.
    The instances run with scripts/serve.sh's Daphne flags, unbuffered (as serve.sh runs them), so the
    lines of Daphne's access log reach its file as they happen."""
    log_dir = ROOT / "test-artifacts" / "servers" / "nginx-proxied"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    private_redis = RedisServer(log_dir)
    env = instance_env(standin_server, private_redis.url, CHAT_FLUSH_INTERVAL="0.2", PYTHONUNBUFFERED="1")
    pair = (
        DaphneServer("a", env, log_dir, flags=SERVE_FLAGS),
        DaphneServer("b", env, log_dir, flags=SERVE_FLAGS),
    )
    proxy = Nginx(log_dir / "nginx", [server.port for server in pair])
    try:
        private_redis.start()
        servers_start(pair)
        yield (*pair, proxy.start())
    finally:
        servers_stop([proxy, *pair, private_redis])


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # One browser session (ChatClient sends it by hand): both sockets open the same conversation.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


async def connect_located(
    http: aiohttp.ClientSession, proxy: Nginx, servers: tuple[DaphneServer, ...], session_id: str
) -> tuple[ChatClient, DaphneServer]:
    """Open a socket through nginx; return it and the instance that accepted it."""
    before = [wsconnects(server, session_id) for server in servers]
    client = await ChatClient(http, proxy, session_id).connect()

    async def accepted_by() -> list[DaphneServer]:
        return [s for s, count in zip(servers, before, strict=True) if wsconnects(s, session_id) > count]

    (server,) = await until(accepted_by, wait=5)
    return client, server


@pytest.mark.django_db(transaction=True)
async def test_a_reply_resumes_exactly_when_the_reconnect_through_nginx_lands_on_the_other_instance(
    proxied, http, standin
):
    a, b, proxy = proxied
    first, first_server = await connect_located(http, proxy, (a, b), "via-nginx")
    await first.send({"message": "through nginx [[standin stamp=1 tokens=200 delay_ms=10]]"})
    start = await first.receive()
    assert start["type"] == "start", start
    seen = [await first.receive() for _ in range(5)]
    assert {frame["type"] for frame in seen} == {"chunk"}
    await first.close()  # the network drops mid-reply; the reply goes on on first_server

    # nginx balances without stickiness: reconnect until a socket lands on the other instance.
    attempts = 0
    while True:
        attempts += 1
        again, server = await connect_located(http, proxy, (a, b), "via-nginx")
        if server is not first_server:
            break
        await again.close()
        assert attempts < 6, "six sockets through nginx all landed on the first socket's instance"

    streaming = again.history["streaming"]
    assert streaming["message_id"] == start["message_id"]
    rest = await again.until_end()
    assert (rest[-1]["type"], rest[-1]["finish_reason"]) == ("done", "stop")
    text = streaming["content"] + text_after(streaming["offset"], rest)
    assert stamp_indices(text) == list(range(200))  # every token once, none lost at the switch
    # What the first socket was shown is the start of it (the other instance may have resumed from a
    # little earlier: it sees the log CHAT_REPLY_LOG_BATCH_MS late).
    assert text.startswith(text_after(0, seen))
    assert (await Message.objects.aget(pk=start["message_id"])).content == text
    (request,) = standin.requests()
    assert request["outcome"] == "completed"
    await again.close()

    # nginx's own log agrees: the first socket went to one instance, the last to the other.
    async def socket_lines() -> list[str]:
        lines = proxy.access_lines("GET /ws/chat/via-nginx/ ")
        return lines if len(lines) == 1 + attempts else []

    lines = await until(socket_lines, wait=5)
    assert all('" 101 ' in line for line in lines), lines
    assert lines[0].count(f"upstream=127.0.0.1:{first_server.port} ") == 1, lines[0]
    assert lines[-1].count(f"upstream=127.0.0.1:{server.port} ") == 1, lines[-1]


@pytest.mark.django_db(transaction=True)
async def test_pages_health_and_request_ids_go_through_nginx_and_metrics_do_not(proxied, http):
    a, b, proxy = proxied
    new = await http.get(proxy.url("/"), allow_redirects=False)
    assert new.status == 302
    assert re.fullmatch(r"/c/[A-Za-z0-9_-]+/", new.headers["Location"]), new.headers["Location"]

    spoofed = {"X-Request-ID": "chosen-by-the-client", "X-Forwarded-For": "203.0.113.9"}
    health = await http.get(proxy.url("/healthz"), headers=spoofed)
    assert health.status == 200
    assert await health.json() == {"status": "ok"}
    request_id = health.headers["X-Request-ID"]
    assert request_id != "chosen-by-the-client"

    # The id the instance echoed is the one nginx made ($request_id) and logged.
    async def logged() -> list[str]:
        return proxy.access_lines(f"rid={request_id} ")

    (line,) = await until(logged, wait=5)
    assert '"GET /healthz HTTP/1.1" 200 ' in line
    # nginx overwrote the client's X-Forwarded-For: the instance (--proxy-headers) never saw it.
    assert "203.0.113.9" not in a.log.read_text() + b.log.read_text()

    css = await http.get(proxy.url("/static/conversations/chat.css"))
    assert css.status == 200
    assert css.headers["Content-Type"].startswith("text/css")

    for private in ("/metrics", "/readyz"):
        assert (await http.get(proxy.url(private))).status == 404, private
    # ... and each is there on an instance's own port, for the scraper and the orchestrator.
    for server in (a, b):
        metrics = await http.get(f"http://127.0.0.1:{server.port}/metrics")
        assert metrics.status == 200
        assert "# TYPE" in await metrics.text()
        ready = await http.get(f"http://127.0.0.1:{server.port}/readyz")
        assert ready.status == 200, await ready.text()


@pytest.mark.django_db(transaction=True)
async def test_uploads_up_to_the_attachment_limit_go_through_nginx_and_larger_bodies_get_its_json_413(
    proxied, http
):
    a, b, proxy = proxied
    headers = await form_headers(http, proxy.origin)
    line = b"some notes, line after line\n"
    for size in (2 * 1024 * 1024, 10 * 1024 * 1024):  # 2 MiB, and CHAT_ATTACHMENT_MAX_BYTES exactly
        data = (line * (size // len(line) + 1))[:size]
        form = aiohttp.FormData()
        form.add_field("file", data, filename="notes.txt", content_type="text/plain")
        async with http.post(proxy.url("/api/attachments/"), data=form, headers=headers) as response:
            assert response.status == 201, await response.text()
            assert (await response.json())["size"] == size

    # Over the limit, nginx answers itself, in the app's words: JSON, never its HTML error page.
    too_large = aiohttp.FormData()
    too_large.add_field("file", b"x" * (11 * 1024 * 1024), filename="big.txt", content_type="text/plain")
    async with http.post(proxy.url("/api/attachments/"), data=too_large, headers=headers) as response:
        assert response.status == 413
        assert response.headers["Content-Type"] == "application/json"
        assert (await response.json())["code"] == "attachment_too_large"
    rename = proxy.url("/c/x/rename")
    async with http.post(rename, data=b"x" * (2 * 1024 * 1024), headers=headers) as response:
        assert response.status == 413  # other paths stay small
        assert (await response.json())["code"] == "request_too_large"
    assert not [line for line in proxy.access_lines(" 413 ") if "upstream=127.0.0.1" in line]  # nginx's own


def test_serve_sh_refuses_to_run_with_debug_on():
    result = subprocess.run(
        ["bash", "scripts/serve.sh"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_DEBUG": "True"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "refuses to run with DJANGO_DEBUG on" in result.stderr


def test_the_deploy_conf_keeps_what_the_instances_rely_on():
    """The parts of deploy/nginx.conf the socket path needs but a plain request would not notice."""
    conf = NGINX_SITE.read_text()
    for directive in (
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Request-ID $request_id;",
        "proxy_buffering off;",
        "proxy_read_timeout 1h;",
    ):
        assert directive in conf, directive
    assert not re.search(r"^\s*(ip_hash|hash|sticky)\b", conf, re.MULTILINE)  # no stickiness needed


def test_the_deploy_confs_body_limits_and_refusals_are_the_apps():
    """nginx refuses exactly what the instances would, in their words (with the settings' defaults)."""
    conf = NGINX_SITE.read_text()
    upload, other = body_limit("/api/attachments/"), body_limit("/healthz")
    # The server's own (every path), then the uploads' location's.
    assert re.findall(r"client_max_body_size (\w+);", conf) == [
        f"{other.max_bytes // 1024 // 1024}m",
        f"{upload.max_bytes // 1024}k",
    ]
    for limit in (upload, other, body_limit("/v1/chat/completions")):
        assert f"return 413 '{limit.refusal_body().decode()}';" in conf
