"""Request bodies are held to their path's limit at the server's door, before the app or any parser reads
them: an upload to CHAT_ATTACHMENT_MAX_BYTES plus its envelope, anything else to CHAT_REQUEST_MAX_BYTES,
answered 413 with `{"code", "message"}`.

Through the ASGI app itself (the middleware, whatever the server), then through a real Daphne run with
scripts/serve.sh's flags: a declared body over the limit is answered from its headers, a chunked one as it
passes the limit, and neither is buffered or parsed (the server's peak memory from /proc does not grow by
the body), while other requests are served.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from asgiref.testing import ApplicationCommunicator

from chatproject.asgi import application

from .instances import instance_env
from .processes import HOST, SERVE_FLAGS, DaphneServer, RedisServer, proc_status_kib
from .servers import form_headers, raw_request
from .standin_control import StandIn

MIB = 1024 * 1024
BOUNDARY = "test-boundary-5f3a"


def http_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def answer_of(communicator: ApplicationCommunicator) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the app's answer."""
    start = await communicator.receive_output(5)
    assert start["type"] == "http.response.start", start
    body = await communicator.receive_output(5)
    assert dict(start["headers"]).get(b"content-type") == b"application/json", (start, body)
    return start["status"], orjson.loads(body["body"])


@pytest.fixture
def small_limits(settings: Any) -> None:
    settings.CHAT_ATTACHMENT_MAX_BYTES = 1000
    settings.CHAT_ATTACHMENT_ENVELOPE_BYTES = 100
    settings.CHAT_REQUEST_MAX_BYTES = 200


async def test_a_declared_length_over_the_limit_is_answered_without_reading_the_body(small_limits):
    # No body is ever sent: an app that waited for it would never answer.
    scope = http_scope("/api/attachments/", [(b"content-length", b"1101")])
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": True})
    status, body = await answer_of(communicator)
    assert (status, body["code"]) == (413, "attachment_too_large")
    assert "1,000 bytes" in body["message"]
    await communicator.wait(5)


async def test_a_streamed_body_is_cut_off_once_it_passes_its_paths_limit(small_limits):
    communicator = ApplicationCommunicator(application, http_scope("/api/attachments/", []))
    for _ in range(3):  # 1,500 bytes without a Content-Length, over 1,000 + 100
        await communicator.send_input({"type": "http.request", "body": b"x" * 500, "more_body": True})
    status, body = await answer_of(communicator)
    assert (status, body["code"]) == (413, "attachment_too_large")
    await communicator.wait(5)  # the app gave up the request (Django: as if the client had left)
    assert await communicator.receive_nothing()  # and answered nothing of its own


async def test_other_paths_have_the_small_limit_and_a_body_within_it_reaches_the_app(small_limits):
    over = ApplicationCommunicator(application, http_scope("/healthz", [(b"content-length", b"201")]))
    await over.send_input({"type": "http.request", "body": b"", "more_body": True})
    status, body = await answer_of(over)
    assert (status, body["code"]) == (413, "request_too_large")
    assert "200 bytes" in body["message"]

    within = ApplicationCommunicator(application, http_scope("/healthz", [(b"content-length", b"200")]))
    await within.send_input({"type": "http.request", "body": b"x" * 200})
    start = await within.receive_output(5)
    assert start["status"] == 403  # Django's own answer (CSRF): the body reached the app


# Through a real Daphne.


@pytest.fixture
def instance(
    log_dir: Path, standin: StandIn, private_redis: RedisServer, tmp_path: Path
) -> Iterator[DaphneServer]:
    env = instance_env(
        standin,
        private_redis.url,
        CHAT_MEDIA_ROOT=str(tmp_path / "media"),
        CHAT_REFUSED_BODY_DRAIN_SECONDS="2",
        PYTHONUNBUFFERED="1",
    )
    server = DaphneServer("daphne", env, log_dir, flags=SERVE_FLAGS).start()
    for _ in range(3):  # warm: what the first requests load is not what a body costs
        assert healthz(server) == 200
    yield server
    server.stop()


def healthz(server: DaphneServer) -> int:
    connection = http.client.HTTPConnection(HOST, server.port, timeout=30)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    finally:
        connection.close()


def multipart(size: int) -> tuple[bytes, bytes, int]:
    """The envelope of a multipart body around a `size`-byte file: its head, its tail, the whole length."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head, tail, len(head) + size + len(tail)


def upload_head(length: int | None, extra: str = "") -> str:
    size = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return (
        f"POST /api/attachments/ HTTP/1.1\r\nHost: {HOST}\r\n{size}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}{extra}"
    )


def file_pieces(size: int, *, during: Any = None) -> Iterator[bytes]:
    """A multipart file of `size` bytes, 1 MiB at a time; `during()` is called half-way through."""
    head, tail, _ = multipart(size)
    yield head
    for start in range(0, size, MIB):
        if during is not None and start == size // MIB // 2 * MIB:
            during()
        yield b"x" * min(MIB, size - start)
    yield tail


def peak_growth_mib(server: DaphneServer, before_kib: int) -> float:
    return (proc_status_kib(server.pid, "VmHWM") - before_kib) / 1024


@pytest.mark.subprocess
def test_an_oversized_upload_is_refused_from_its_headers_without_buffering_and_others_are_served(instance):
    size = 64 * MIB
    before = proc_status_kib(instance.pid, "VmHWM")
    served: list[int] = []
    # The client sends all of it before reading (as most HTTP libraries do): the server reads and drops it.
    answer = raw_request(
        instance.port,
        upload_head(multipart(size)[2]),
        file_pieces(size, during=lambda: served.append(healthz(instance))),
        read_early=False,
    )
    assert (answer.status, answer.json()["code"]) == (413, "attachment_too_large"), answer
    assert answer.headers["content-type"] == "application/json"
    assert answer.sent == multipart(size)[2]
    assert answer.closed
    assert served == [200]  # a request in the middle of the upload is answered
    growth = peak_growth_mib(instance, before)
    assert growth < size / MIB / 4, f"the server's peak memory grew by {growth:.0f} MiB"
    assert "request body refused: /api/attachments/" in instance.output()
    assert healthz(instance) == 200


@pytest.mark.subprocess
def test_a_client_that_waits_gets_the_refusal_at_once_and_a_stalled_one_is_let_go(instance):
    # `Expect: 100-continue` asks before sending: the 413 comes instead of "100 Continue".
    answer = raw_request(instance.port, upload_head(200 * MIB, "\r\nExpect: 100-continue"), [])
    assert (answer.status, answer.json()["code"]) == (413, "attachment_too_large")
    assert answer.closed  # CHAT_REFUSED_BODY_DRAIN_SECONDS after the answer, without the rest of the body


@pytest.mark.subprocess
def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(instance):
    size = 64 * MIB
    before = proc_status_kib(instance.pid, "VmHWM")
    answer = raw_request(instance.port, upload_head(None), file_pieces(size), chunked=True)
    assert (answer.status, answer.json()["code"]) == (413, "attachment_too_large"), answer
    # The answer came once the limit was passed, not at the end (the socket buffers hold a few MiB more).
    assert 10 * MIB < answer.sent < 48 * MIB
    assert answer.closed
    growth = peak_growth_mib(instance, before)
    assert growth < size / MIB / 4, f"the server's peak memory grew by {growth:.0f} MiB"

    head = f"POST /healthz HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {2 * MIB}"
    over = raw_request(instance.port, head, [])
    assert (over.status, over.json()["code"]) == (413, "request_too_large")  # other paths: 1 MiB


@pytest.mark.subprocess
def test_a_body_within_the_limit_is_not_parsed_by_the_server(instance):
    # Daphne's Twisted request parsed every form POST into memory before the app could look at it.
    size = 9 * MIB + MIB // 2
    before = proc_status_kib(instance.pid, "VmHWM")
    answer = raw_request(instance.port, upload_head(multipart(size)[2]), file_pieces(size), close_wait=0)
    assert answer.status == 403  # the app's answer: no session, no CSRF token
    growth = peak_growth_mib(instance, before)
    assert growth < 4 * size / MIB, f"the server's peak memory grew by {growth:.0f} MiB"


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
async def test_an_upload_of_a_file_at_the_limit_is_stored(instance):
    data = (b"line of text\n" * (10 * MIB // 13 + 1))[: 10 * MIB]  # CHAT_ATTACHMENT_MAX_BYTES exactly
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("file", data, filename="notes.txt", content_type="text/plain")
        headers = await form_headers(http, instance.origin)
        async with http.post(f"{instance.origin}/api/attachments/", data=form, headers=headers) as response:
            assert response.status == 201, await response.text()
            assert (await response.json())["size"] == len(data)
