"""Replies beyond the upstream pool's connections wait for a free one, within their first-token time:
a busy instance queues a reply, it does not fail it after the few seconds a TCP connect may take. And the
blocking calls (the catalog, the readiness check, OCR) share the process's one pool."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conversations import upstream

from .chat_sockets import reply_collect, socket_open

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_reply_waits_for_a_free_upstream_connection(standin, replies_settle, settings):
    settings.CHAT_UPSTREAM_MAX_CONNECTIONS = 1  # read when this test's instance makes its upstream client
    settings.CHAT_UPSTREAM_CONNECT_TIMEOUT = 0.3
    settings.CHAT_UPSTREAM_FIRST_TOKEN_TIMEOUT = 10
    first = await socket_open("/ws/chat/pool-first/")
    second = await socket_open("/ws/chat/pool-second/")

    await first.send_json_to({"message": "long [[standin tokens=20 delay_ms=60]]"})
    assert (await first.receive_json_from(timeout=5))["type"] == "start"
    await second.send_json_to({"message": "waits for the connection [[standin tokens=3]]"})

    frames = await reply_collect(second)
    assert frames[-1]["type"] == "done", frames[-1]
    assert (await reply_collect(first))[-1]["type"] == "done"
    for tab in (first, second):
        await tab.disconnect()


@pytest.fixture
def api_counting_connections(settings) -> Iterator[list[int]]:
    """An API that keeps connections open (HTTP/1.1) and lists the client port of each request it
    answers: the model list, and an OCR reading of one page."""
    ports: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.answer({"object": "list", "data": [{"id": "m", "object": "model"}]})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.answer({"model": "ocr", "pages": [{"index": 0, "markdown": "text"}]})

        def answer(self, value: object) -> None:
            ports.append(self.client_address[1])
            body = json.dumps(value).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.DEDALUS_BASE_URL = f"http://127.0.0.1:{server.server_port}"
    yield ports
    server.shutdown()
    server.server_close()


def test_the_blocking_calls_share_one_connection_pool(api_counting_connections):
    assert [entry["id"] for entry in upstream.models_list()] == ["m"]
    assert upstream.upstream_problem() is None
    assert upstream.ocr_read(b"%PDF-1.4") == upstream.OcrReading("text", "ocr", 1)
    ports = api_counting_connections
    assert len(ports) == 3
    assert len(set(ports)) == 1  # one connection, kept in the pool between the calls
