"""Chat completions that outlast the server's HTTP timeout: a live Daphne with scripts/serve.sh's flags but
`--http-timeout 3`, and the stand-in answering for longer. Streamed and whole completions complete through
OpenAI's client, a whole one's late error still reads as an error, a request with no response by the
timeout still gets Daphne's 503 (and a started one silent that long is closed), and through nginx with
deploy/nginx.conf a stream arrives token by token, its pings with it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from conversations.models import Message

from .openai_clients import api_server_start, client, key_for
from .processes import SERVE_FLAGS, DaphneServer, Nginx
from .servers import stamp_indices
from .standin_control import StandIn

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

MODEL = "openai/gpt-5.1"
HTTP_TIMEOUT = 3
PING_SECONDS = 1
# Daphne checks its timeouts every 2 s: a response it cuts by age is cut by then.
CUT_BY = HTTP_TIMEOUT + 2
# 2.5 s of silence, then 20 tokens 200 ms apart: 6.5 s, past CUT_BY.
LONG = "[[standin stamp=1 first_delay_ms=2500 tokens=20 delay_ms=200]]"


def flags(http_timeout: int) -> list[str]:
    """scripts/serve.sh's Daphne flags with `--http-timeout` set to `http_timeout`."""
    swapped = list(SERVE_FLAGS)
    swapped[swapped.index("--http-timeout") + 1] = str(http_timeout)
    return swapped


def server_start(standin: StandIn, log_dir: Path, name: str, ping_seconds: float) -> DaphneServer:
    return api_server_start(
        standin,
        log_dir,
        name,
        flags=flags(HTTP_TIMEOUT),
        CHAT_API_KEY_RATE_LIMIT="0",
        CHAT_TITLE_MODEL="",
        CHAT_API_PING_SECONDS=str(ping_seconds),
        PYTHONUNBUFFERED="1",
    )


@pytest.fixture(scope="module")
def api_server(
    standin_server: StandIn, tmp_path_factory: pytest.TempPathFactory, django_db_setup: None
) -> Iterator[DaphneServer]:
    server = server_start(standin_server, tmp_path_factory.mktemp("long-logs"), "long", PING_SECONDS)
    yield server
    server.stop()


def reply() -> Message:
    return Message.objects.get(role="assistant")


def test_a_stream_longer_than_the_http_timeout_completes(api_server: DaphneServer) -> None:
    api = client(api_server, key_for())

    started = time.monotonic()
    stream = api.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"long {LONG}"}], stream=True
    )
    chunks = list(stream)
    lasted = time.monotonic() - started

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert stamp_indices(text) == list(range(20))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    assert lasted > CUT_BY
    assert (reply().status, reply().content) == ("complete", text)


def test_a_whole_completion_longer_than_the_http_timeout_completes(api_server: DaphneServer) -> None:
    api = client(api_server, key_for())

    started = time.monotonic()
    raw = api.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": f"long {LONG}"}]
    )
    completion = raw.parse()
    lasted = time.monotonic() - started

    assert lasted > CUT_BY
    assert stamp_indices(completion.choices[0].message.content or "") == list(range(20))
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    # Kept alive: whitespace, one a second while the model worked, then the body.
    body = raw.http_response.content
    assert raw.http_response.status_code == 200
    assert raw.headers["content-type"] == "application/json"
    assert body[: CUT_BY - 1] == b"\n" * (CUT_BY - 1)
    assert json.loads(body)["id"] == completion.id
    assert raw.headers["X-Conversation-Id"]
    assert (reply().status, reply().content) == ("complete", completion.choices[0].message.content)


def test_a_whole_completions_error_before_the_keep_alive_keeps_its_status(api_server: DaphneServer) -> None:
    with pytest.raises(openai.APIStatusError) as payment:
        client(api_server, key_for()).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "pay [[standin status=402]]"}]
        )
    assert (payment.value.status_code, payment.value.body["code"]) == (402, "upstream_payment_required")


def test_a_whole_completions_error_after_the_keep_alive_is_an_error_body(api_server: DaphneServer) -> None:
    key = key_for()
    ask = "drop [[standin first_delay_ms=1500 tokens=20 delay_ms=20 drop_after=5]]"
    body = {"model": MODEL, "messages": [{"role": "user", "content": ask}]}
    url, headers = f"{api_server.origin}/v1/chat/completions", {"Authorization": f"Bearer {key}"}

    answer = httpx.post(url, json=body, headers=headers, timeout=20)
    completion = client(api_server, key).chat.completions.create(model=MODEL, messages=body["messages"])

    # The status went out with the first whitespace; the error is the body, as OpenAI shapes one, and
    # OpenAI's client hands it over (`choices` None, the error in `model_extra`).
    assert answer.status_code == 200
    assert answer.content.startswith(b"\n")
    error = answer.json()["error"]
    assert (error["code"], error["type"]) == ("upstream_error", "server_error")
    assert error["message"]
    assert completion.model_extra == {"error": error}
    assert completion.choices is None
    assert [message.status for message in Message.objects.filter(role="assistant")] == ["error", "error"]


def test_a_client_that_leaves_before_the_keep_alive_stops_the_reply(api_server: DaphneServer) -> None:
    key = key_for()
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"long {LONG}"}]}
    url, headers = f"{api_server.origin}/v1/chat/completions", {"Authorization": f"Bearer {key}"}
    # The turn opens well within 0.8 s; the response would start PING_SECONDS after it.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, json=body, headers=headers, timeout=httpx.Timeout(10, read=0.8))

    deadline = time.monotonic() + 10
    while reply().status == "streaming" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reply().status == "interrupted"


def test_a_request_silent_for_the_http_timeout_gets_503_or_is_closed(standin: StandIn, log_dir: Path) -> None:
    # The keep-alive and the pings come later than the timeout: what hangs is still ended.
    server = server_start(standin, log_dir, "hung", ping_seconds=30)
    try:
        key = key_for()
        silent = [{"role": "user", "content": "wait [[standin first_delay_ms=15000]]"}]
        url, headers = f"{server.origin}/v1/chat/completions", {"Authorization": f"Bearer {key}"}
        started = time.monotonic()
        answer = httpx.post(url, json={"model": MODEL, "messages": silent}, headers=headers, timeout=20)
        waited = time.monotonic() - started

        started = time.monotonic()
        # A stream starts with its first text, then falls silent past the timeout.
        stalled = [{"role": "user", "content": "stall [[standin tokens=3 delay_ms=0 stall_after=1]]"}]
        streamed = {"model": MODEL, "messages": stalled, "stream": True}
        with httpx.stream("POST", url, json=streamed, headers=headers, timeout=20) as stream:
            lines = [line for line in stream.iter_lines() if line]
        closed_after = time.monotonic() - started
    finally:
        server.stop()

    # No response by the timeout: Daphne's 503, in time.
    assert answer.status_code == 503
    assert "Application failed to respond within time limit." in answer.text
    assert HTTP_TIMEOUT <= waited < CUT_BY + 1
    # A started response silent for the timeout: closed, its reply unfinished.
    assert stream.status_code == 200
    assert '"role":"assistant"' in lines[0]
    assert "data: [DONE]" not in lines
    assert HTTP_TIMEOUT <= closed_after < CUT_BY + 1


def test_a_stream_through_nginx_arrives_token_by_token_with_its_pings(
    api_server: DaphneServer, log_dir: Path
) -> None:
    proxy = Nginx(log_dir / "nginx", [api_server.port]).start()
    try:
        key = key_for()
        # 2.5 s of silence (pings), then 12 tokens 300 ms apart: past CUT_BY too.
        ask = "paced [[standin stamp=1 first_delay_ms=2500 tokens=12 delay_ms=300]]"
        body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": ask}]}
        url, headers = proxy.url("/v1/chat/completions"), {"Authorization": f"Bearer {key}"}
        arrivals: list[tuple[float, str]] = []
        with httpx.stream("POST", url, json=body, headers=headers, timeout=20) as response:
            arrivals.extend((time.monotonic(), line) for line in response.iter_lines() if line)
    finally:
        proxy.stop()

    assert response.status_code == 200
    lines = [line for _, line in arrivals]
    assert lines[-1] == "data: [DONE]"
    contents = [
        (at, chunk["choices"][0]["delta"]["content"])
        for at, line in arrivals
        if line.startswith("data: {")
        and (chunk := json.loads(line.removeprefix("data: ")))["choices"]
        and chunk["choices"][0]["delta"].get("content")
    ]
    assert stamp_indices("".join(text for _, text in contents)) == list(range(12))
    assert len(contents) >= 10, lines
    # Each token as it was written: the first long before the last (half the 3.3 s they were paced over).
    assert contents[-1][0] - contents[0][0] >= 0.5 * 11 * 0.3
    pings = [at for at, line in arrivals if line == ": ping"]
    assert pings
    assert pings[0] < contents[0][0]
