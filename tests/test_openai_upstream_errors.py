"""The Dedalus API's failures as OpenAI's client sees them, through a live Daphne and the stand-in: after
the relay's own retries, an upstream 429 is a 429 with the upstream's Retry-After
(`openai.RateLimitError`), a 402 stays a 402, a 5xx is a 502 and a late answer a 504, whole or streamed
(a stream's headers wait for its first text or its failure); a failure after the first text is an
`error` event. Each failed reply is stored as failed, with its code."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from conversations.models import Message

from .openai_clients import api_server_start, client, key_for
from .processes import DaphneServer
from .standin_control import StandIn

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

MODEL = "openai/gpt-5.1"
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def api_server(
    standin_server: StandIn, tmp_path_factory: pytest.TempPathFactory, django_db_setup: None
) -> Iterator[DaphneServer]:
    server = api_server_start(
        standin_server,
        tmp_path_factory.mktemp("upstream-errors-logs"),
        "upstream-errors",
        CHAT_API_KEY_RATE_LIMIT="0",
        CHAT_TITLE_MODEL="",
        CHAT_UPSTREAM_MAX_RETRIES="1",
        CHAT_UPSTREAM_RETRY_BACKOFF="0.01",
        CHAT_UPSTREAM_FIRST_TOKEN_TIMEOUT="0.5",
    )
    yield server
    server.stop()


def failed_reply() -> Message:
    (reply,) = Message.objects.filter(role="assistant")
    assert reply.status == "error"
    return reply


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_upstream_429_after_the_retries_is_a_429_with_its_retry_after(
    api_server: DaphneServer, standin: StandIn, stream: bool
) -> None:
    standin.script({"status": 429, "retry_after": "0"}, {"status": 429, "retry_after": "7"})
    api = client(api_server, key_for())
    with pytest.raises(openai.RateLimitError) as refused:
        api.chat.completions.create(model=MODEL, messages=HI, stream=stream)

    assert refused.value.status_code == 429
    assert refused.value.response.headers["Retry-After"] == "7"
    assert refused.value.body["code"] == "upstream_rate_limited"
    assert refused.value.body["type"] == "rate_limit_error"
    assert refused.value.response.headers["X-Conversation-Id"]
    assert [r["outcome"] for r in standin.requests()] == ["error_status"] * 2  # retried once, as set
    assert failed_reply().error_code == "upstream_rate_limited"


def test_an_upstream_429_without_retry_after_has_none(api_server: DaphneServer, standin: StandIn) -> None:
    standin.script({"status": 429}, {"status": 429})
    with pytest.raises(openai.RateLimitError) as refused:
        client(api_server, key_for()).chat.completions.create(model=MODEL, messages=HI)
    assert refused.value.response.headers["Retry-After"] == "0"  # the stand-in's 429 says 0 unless told

    standin.script({"status": 429, "retry_after": "soon"}, {"status": 429, "retry_after": "soon"})
    with pytest.raises(openai.RateLimitError) as unreadable:
        client(api_server, key_for()).chat.completions.create(model=MODEL, messages=HI)
    assert "Retry-After" not in unreadable.value.response.headers


@pytest.mark.parametrize(
    ("script", "status", "code"),
    [
        ([{"status": 402}], 402, "upstream_payment_required"),
        ([{"status": 500}, {"status": 503}], 502, "upstream_error"),
        ([{"stall_before_headers": 3}], 504, "upstream_timeout"),
    ],
    ids=["402", "5xx", "timeout"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_other_upstream_failures_keep_their_statuses(
    api_server: DaphneServer, standin: StandIn, script: list[dict], status: int, code: str, stream: bool
) -> None:
    standin.script(*script)
    with pytest.raises(openai.APIStatusError) as refused:
        client(api_server, key_for()).chat.completions.create(model=MODEL, messages=HI, stream=stream)

    assert (refused.value.status_code, refused.value.body["code"]) == (status, code)
    assert "Retry-After" not in refused.value.response.headers
    assert failed_reply().error_code == code


def test_a_failure_after_the_first_text_is_an_error_event(api_server: DaphneServer, standin: StandIn) -> None:
    standin.script({"tokens": 20, "drop_after": 5, "delay_ms": 5})
    stream = client(api_server, key_for()).chat.completions.create(model=MODEL, messages=HI, stream=True)
    chunks = []
    with pytest.raises(openai.APIError) as failed:
        chunks.extend(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    assert text
    assert failed.value.body["code"] == "upstream_error"
    assert failed_reply().content == text
