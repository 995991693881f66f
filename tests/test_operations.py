"""What an operator sees: health and readiness with latencies, Prometheus metrics that move, JSON logs."""

from __future__ import annotations

import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest.mock import ANY

import aiohttp
import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import Client

from conversations import upstream
from conversations.web import health

from .chat_sockets import chunks_text, reply_collect
from .processes import DaphneServer, RedisServer, server_env
from .servers import ChatClient

pytestmark = pytest.mark.django_db(transaction=True)

METRICS = [
    "chat_open_sockets",
    "chat_replies_in_flight",
    "chat_replies_total",
    "chat_upstream_first_token_seconds",
    "chat_relay_delay_seconds",
    "chat_completion_tokens_total",
    "chat_chunks_relayed_total",
    "chat_upstream_errors_total",
    "chat_refusals_total",
    "chat_reply_db_flushes",
]


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else r"(?:\{\})?") + r" ([0-9.e+-]+)"
    match = re.search("^" + pattern + "$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.fixture(autouse=True)
def readiness_checked_each_time(settings, monkeypatch):
    """Each /readyz below sees the dependencies as they are now (not the last answer, kept 2 s)."""
    settings.CHAT_READY_CACHE_SECONDS = 0
    monkeypatch.setattr(health, "_latest", None)


def test_healthz_answers(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_reports_each_dependency_with_its_latency(client, standin):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert set(body["checks"]) == {"database", "redis", "events", "upstream"}
    for check in body["checks"].values():
        assert check["ok"] is True
        assert check["latency_ms"] >= 0


def test_readyz_is_503_while_redis_is_down_and_200_again_when_it_returns(client, standin, tmp_path):
    redis_server = RedisServer(tmp_path).start()
    settings.REDIS_URL = redis_server.url
    try:
        assert client.get("/readyz").status_code == 200
        redis_server.stop()
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["checks"]["redis"]["ok"] is False
        assert down.json()["checks"]["database"]["ok"] is True
        redis_server.start()
        assert client.get("/readyz").status_code == 200
    finally:
        redis_server.stop()
        settings.REDIS_URL = os.environ["REDIS_URL"]


def test_readyz_is_503_when_the_upstream_is_unreachable(client, standin, settings):
    settings.DEDALUS_BASE_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    body = client.get("/readyz")
    assert body.status_code == 503
    assert body.json()["checks"]["upstream"]["ok"] is False


async def test_metrics_move_when_a_reply_streams(chat_socket, standin, async_client):
    before = (await async_client.get("/metrics")).content.decode()
    for name in METRICS:
        assert f"# TYPE {name}" in before
    await chat_socket.send_json_to({"message": "measure me [[standin tokens=30]]"})
    frames = await reply_collect(chat_socket)
    after = (await async_client.get("/metrics")).content.decode()

    model = "openai/gpt-5.1"
    chunks = sum(1 for frame in frames if frame["type"] == "chunk")
    assert (
        metric(after, "chat_replies_total", 'status="complete"')
        == metric(before, "chat_replies_total", 'status="complete"') + 1
    )
    assert (
        metric(after, "chat_completion_tokens_total", f'model="{model}"')
        - metric(before, "chat_completion_tokens_total", f'model="{model}"')
        == 30
    )
    assert (
        metric(after, "chat_chunks_relayed_total", f'model="{model}"')
        - metric(before, "chat_chunks_relayed_total", f'model="{model}"')
        == chunks
    )
    assert (
        metric(after, "chat_relay_delay_seconds_count") - metric(before, "chat_relay_delay_seconds_count")
        == chunks
    )
    assert (
        metric(after, "chat_upstream_first_token_seconds_count")
        == metric(before, "chat_upstream_first_token_seconds_count") + 1
    )
    assert metric(after, "chat_reply_db_flushes_count") == metric(before, "chat_reply_db_flushes_count") + 1
    assert metric(after, "chat_open_sockets") >= 1
    assert metric(after, "chat_replies_in_flight") == 0
    assert chunks_text(frames)


async def test_metrics_count_upstream_errors_and_refusals(chat_socket, standin, async_client, settings):
    settings.CHAT_UPSTREAM_MAX_RETRIES = 0
    before = (await async_client.get("/metrics")).content.decode()
    standin.script({"status": 400})
    await chat_socket.send_json_to({"message": "fails"})
    await reply_collect(chat_socket)
    after = (await async_client.get("/metrics")).content.decode()
    assert (
        metric(after, "chat_upstream_errors_total", 'code="upstream_error"')
        == metric(before, "chat_upstream_errors_total", 'code="upstream_error"') + 1
    )


def test_metrics_can_require_a_bearer_token(client, settings):
    settings.CHAT_METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200


def test_every_response_carries_a_request_id_and_keeps_the_proxys(client):
    assert re.fullmatch(r"[0-9a-f]{32}", client.get("/healthz")["X-Request-ID"])
    assert (
        client.get("/healthz", headers={"X-Request-ID": "from-nginx-42"})["X-Request-ID"] == "from-nginx-42"
    )


@pytest.mark.subprocess
async def test_a_server_logs_one_json_line_per_reply_without_its_text(standin, tmp_path: Path):
    env = server_env(
        database_name=settings.DATABASES["default"]["NAME"],
        redis_url="",
        standin_url=standin.url,
        CHAT_LOG_FORMAT="json",
    )
    server = DaphneServer("json-logs", env, tmp_path).start()
    try:
        async with aiohttp.ClientSession() as http:
            tab = await ChatClient(http, server, "logged").connect()
            await tab.send({"message": "a private sentence [[standin tokens=12]]"})
            frames = await tab.until_end()
            await tab.close()
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    (entry,) = [line for line in lines if line.get("message") == "reply ended"]
    assert entry["message_id"] == frames[0]["message_id"]
    assert entry["session_id"] == "logged"
    assert entry["model"] == "openai/gpt-5.1"
    assert entry["status"] == "complete"
    assert entry["completion_tokens"] == 12
    assert entry["first_token_ms"] >= 0
    assert entry["duration_ms"] >= entry["first_token_ms"]
    assert entry["request_id"].startswith("ws-")
    assert "private sentence" not in server.log.read_text()
    assert "test-key" not in server.log.read_text()


def test_readyz_names_the_failed_check_but_logs_its_detail_only(client, standin, monkeypatch, caplog):
    def database_down() -> None:
        raise OperationalError('connection to server at "db.internal" failed: role "chat_admin" denied')

    monkeypatch.setattr(health, "_database", database_down)
    with caplog.at_level(logging.WARNING, logger="conversations.web.health"):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {"ok": False, "latency_ms": ANY}
    assert b"db.internal" not in response.content
    assert b"chat_admin" not in response.content
    assert "db.internal" in caplog.text  # the operator still finds it in the log


def test_a_flood_of_readyz_hits_costs_one_check_per_interval(client, standin, monkeypatch, settings):
    settings.CHAT_READY_CACHE_SECONDS = 60
    calls = []
    real_problem = upstream.upstream_problem
    monkeypatch.setattr(upstream, "upstream_problem", lambda: calls.append(1) or real_problem())
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: Client().get("/readyz").status_code, range(24)))
    assert statuses == [200] * 24
    assert len(calls) == 1
