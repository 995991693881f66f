"""End-to-end tests of the Dedalus API stand-in over real HTTP, through the real dedalus-labs SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import dedalus_labs
import httpx
import orjson
import pytest

from standin.answers import answer_tokens

from .processes import standin_start

TOKENS = 12
USER_AUTH = {"Authorization": "Bearer test"}


@pytest.fixture(scope="module")
def standin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the stand-in as a subprocess on a free port and yield its base URL."""
    log = tmp_path_factory.mktemp("standin") / "standin.log"
    proc, url = standin_start("--tokens", str(TOKENS), "--delay-ms", "2", log=log)
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture(autouse=True)
def clean_standin(standin_url: str) -> None:
    """Empty the stand-in's script queue and request log before each test."""
    with httpx.Client(base_url=standin_url) as client:
        client.delete("/_standin/script").raise_for_status()
        client.delete("/_standin/requests").raise_for_status()


def sdk(url: str, **kwargs: Any) -> dedalus_labs.AsyncDedalus:
    """Return an SDK client pointed at the stand-in."""
    return dedalus_labs.AsyncDedalus(api_key="test", base_url=url, **kwargs)


def expected_answer(words: list[str], tokens: int | None = TOKENS) -> str:
    """The default reply to ``words``: the Markdown answer, cut (or lengthened) to ``tokens`` tokens."""
    return "".join(answer_tokens(words, [], tokens))


def expected_echo(words: list[str], tokens: int = TOKENS) -> str:
    """Return the reply text the stand-in builds for ``words``: the echo padded with filler."""
    parts = ["You said: ", *(w + " " for w in words)]
    filler = ["lorem ", "ipsum ", "dolor ", "sit ", "amet "]
    parts += [filler[i % 5] for i in range(tokens - len(parts))]
    return "".join(parts)


async def request_log(url: str) -> list[dict[str, Any]]:
    """Return the stand-in's request log."""
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/_standin/requests")
        response.raise_for_status()
        return response.json()


async def wait_for_outcome(url: str, outcome: str, within_s: float = 5.0) -> dict[str, Any]:
    """Poll the request log until the latest record has ``outcome``; return that record."""
    deadline = time.monotonic() + within_s
    while True:
        log = await request_log(url)
        if log and log[-1]["outcome"] == outcome:
            return log[-1]
        assert time.monotonic() < deadline, f"no {outcome!r} outcome in time: {log}"
        await asyncio.sleep(0.05)


async def test_sdk_stream_default_answer_and_usage(standin_url: str) -> None:
    """The SDK's streamed deltas rebuild the default answer cut to ``tokens``, and the last chunk carries
    usage."""
    client = sdk(standin_url)
    stream = await client.chat.completions.create(
        model="openai/gpt-5.1",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello world"}],
        stream=True,
        mcp_servers=["org/name"],
    )
    text, usage, roles = "", None, []
    async for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            text += delta.content or ""
            roles += [delta.role] if delta.role else []
        if chunk.usage:
            usage = chunk.usage
    assert text == expected_answer(["hello", "world"])
    assert text.startswith("You asked: “hello world”. Here is a short answer.")
    assert roles == ["assistant"]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (4, TOKENS, 4 + TOKENS)

    [rec] = await request_log(standin_url)
    assert rec["outcome"] == "completed"
    assert rec["tokens_sent"] == TOKENS
    assert rec["body"]["mcp_servers"] == ["org/name"]
    assert rec["headers"]["authorization"] == "Bearer test"
    assert rec["headers"]["idempotency-key"].startswith("stainless-python-retry-")


async def test_echo_is_verbatim_and_never_cut(standin_url: str) -> None:
    """With ``echo=1``, markup comes back verbatim and an echo longer than ``tokens`` is sent whole."""
    message = "<img src=x onerror=alert(1)> " + " ".join(f"w{i}" for i in range(20))
    response = await sdk(standin_url).chat.completions.create(
        model="openai/gpt-5.1", messages=[{"role": "user", "content": message + " [[standin echo=1]]"}]
    )
    assert response.choices[0].message.content == "You said: " + message + " "
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.completion_tokens == 24


async def test_runner_stream_sends_model_list(standin_url: str) -> None:
    """DedalusRunner streams against the stand-in and sends ``model`` as a list."""
    runner = dedalus_labs.DedalusRunner(sdk(standin_url))
    chunks = runner.run(
        messages=[{"role": "user", "content": "hi there"}], model="openai/gpt-5.1", stream=True
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in chunks])
    assert text == expected_answer(["hi", "there"])
    [rec] = await request_log(standin_url)
    assert rec["body"]["model"] == ["openai/gpt-5.1"]


async def test_runner_stream_with_server_tool(standin_url: str) -> None:
    """A ``tool`` directive yields a tool call plus mcp_tool_results; the runner stops after one turn."""
    runner = dedalus_labs.DedalusRunner(sdk(standin_url))
    chunks = runner.run(
        messages=[{"role": "user", "content": "weather today [[standin tool=search tokens=4]]"}],
        model="openai/gpt-5.1",
        mcp_servers=["org/name"],
        stream=True,
    )
    tool_names, text = [], ""
    async for chunk in chunks:
        delta = chunk.choices[0].delta
        tool_names += [call.function.name for call in delta.tool_calls or []]
        text += delta.content or ""
    assert tool_names == ["search"]
    assert text == "You asked: “weather today”. "
    assert len(await request_log(standin_url)) == 1


async def test_status_directive_raises_sdk_error(standin_url: str) -> None:
    """``status=500`` makes the SDK raise InternalServerError with the OpenAI-style error body."""
    client = sdk(standin_url, max_retries=0)
    with pytest.raises(dedalus_labs.InternalServerError) as info:
        await client.chat.completions.create(
            model="openai/gpt-5.1",
            messages=[{"role": "user", "content": "boom [[standin status=500]]"}],
            stream=True,
        )
    assert info.value.status_code == 500
    # Unlike the openai SDK, dedalus-labs keeps the whole body rather than unwrapping "error".
    assert info.value.body["error"]["type"] == "server_error"
    [rec] = await request_log(standin_url)
    assert rec["outcome"] == "error_status"


async def test_an_error_status_carries_the_retry_after_it_is_given(standin_url: str) -> None:
    """``retry_after`` is the error's Retry-After; a 429 without one says ``0``."""
    client = sdk(standin_url, max_retries=0)
    for directive, expected in [("status=429 retry_after=7", "7"), ("status=429", "0"), ("status=503", None)]:
        with pytest.raises(dedalus_labs.APIStatusError) as info:
            await client.chat.completions.create(
                model="openai/gpt-5.1", messages=[{"role": "user", "content": f"[[standin {directive}]]"}]
            )
        assert info.value.response.headers.get("retry-after") == expected, directive


async def test_missing_auth_is_401(standin_url: str) -> None:
    """A request without Authorization is refused with an OpenAI-style error."""
    async with httpx.AsyncClient(base_url=standin_url) as client:
        response = await client.post("/v1/chat/completions", json={"model": "openai/gpt-5.1", "messages": []})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


async def test_drop_after_breaks_stream(standin_url: str) -> None:
    """``drop_after=3`` closes the connection after three tokens with no final chunks or [DONE]."""
    body = {
        "model": "openai/gpt-5.1",
        "stream": True,
        "messages": [{"role": "user", "content": "one two three four [[standin drop_after=3]]"}],
    }
    events: list[bytes] = []

    async def consume() -> None:
        async with (
            httpx.AsyncClient(base_url=standin_url, headers=USER_AUTH) as client,
            client.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    events.append(line.removeprefix("data: ").encode())

    # The body ends mid chunked-encoding, which httpx reports as a protocol error.
    with pytest.raises(httpx.RemoteProtocolError):
        await consume()
    assert b"[DONE]" not in events
    contents = [orjson.loads(e)["choices"][0]["delta"].get("content") for e in events]
    assert contents == ["", "You ", "asked: ", "“one "]
    rec = await wait_for_outcome(standin_url, "dropped")
    assert rec["tokens_sent"] == 3


async def test_script_queue_is_consumed_in_order(standin_url: str) -> None:
    """Scripted behaviours apply one per request, in order, before directives and defaults."""
    async with httpx.AsyncClient(base_url=standin_url) as control:
        script = [{"reply": "first"}, {"reply": "second  reply"}, {"status": 503}]
        (await control.post("/_standin/script", json=script)).raise_for_status()

    client = sdk(standin_url, max_retries=0)

    async def ask(text: str) -> str:
        response = await client.chat.completions.create(
            model="openai/gpt-5.1", messages=[{"role": "user", "content": text}]
        )
        return response.choices[0].message.content

    assert await ask("a [[standin reply=ignored]]") == "first"
    assert await ask("b") == "second  reply"
    with pytest.raises(dedalus_labs.InternalServerError):
        await ask("c")
    assert await ask("d [[standin reply=from%20directive]]") == "from directive"
    assert await ask("e") == expected_answer(["e"])

    log = await request_log(standin_url)
    assert [rec["behaviour"].get("reply") for rec in log] == [
        "first",
        "second  reply",
        None,
        "from directive",
        None,
    ]
    assert [rec["id"] for rec in log] == sorted(rec["id"] for rec in log)


async def test_abandoned_stream_is_logged_as_client_disconnected(standin_url: str) -> None:
    """Closing a slow stream midway shows up as ``client_disconnected`` in the request log."""
    body = {
        "model": "openai/gpt-5.1",
        "stream": True,
        "messages": [{"role": "user", "content": "slow [[standin tokens=200 delay_ms=30]]"}],
    }
    seen = 0
    async with (
        httpx.AsyncClient(base_url=standin_url, headers=USER_AUTH) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        async for line in response.aiter_lines():
            seen += line.startswith("data: ")
            if seen == 3:
                break
    rec = await wait_for_outcome(standin_url, "client_disconnected")
    assert 2 <= rec["tokens_sent"] < 200
    assert rec["ended_at"] >= rec["started_at"]


async def test_stamp_tokens_carry_increasing_timestamps(standin_url: str) -> None:
    """``stamp=1`` sends exactly ``tokens`` "<index>@<µs> " tokens with non-decreasing times."""
    stream = await sdk(standin_url).chat.completions.create(
        model="openai/gpt-5.1",
        messages=[{"role": "user", "content": "[[standin stamp=1 tokens=5]]"}],
        stream=True,
    )
    tokens = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert [t.split("@")[0] for t in tokens] == ["0", "1", "2", "3", "4"]
    stamps = [int(t.split("@")[1]) for t in tokens]
    assert stamps == sorted(stamps)
    assert abs(stamps[0] / 1e6 - time.time()) < 60


@pytest.fixture(scope="module")
def natural_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A stand-in started without ``--tokens``: each answer has its own length."""
    log = tmp_path_factory.mktemp("standin-natural") / "standin.log"
    proc, url = standin_start("--delay-ms", "0", log=log)
    try:
        yield url
    finally:
        proc.stop()


async def test_default_answers_are_markdown_chosen_by_the_words_and_deterministic(natural_url: str) -> None:
    """A paragraph, then a code block, a table or a list as the words call for, and a link; the same
    question gets the same answer."""
    client = sdk(natural_url)

    async def ask(text: str) -> str:
        response = await client.chat.completions.create(
            model="openai/gpt-5.1", messages=[{"role": "user", "content": text}]
        )
        return response.choices[0].message.content

    code = await ask("write a python function")
    table = await ask("compare the small and large models")
    steps = await ask("how do I start learning Go?")
    assert code.startswith("You asked: “write a python function”. Here is a short answer.\n\n")
    assert "```python\n" in code
    assert "\n```\n" in code
    assert "| option | speed | cost | best for |\n|---|---|---|---|\n" in table
    assert "\n1. **Define the goal**" in steps
    for answer in (code, table, steps):
        assert "[the Dedalus documentation](https://docs.dedaluslabs.ai)" in answer
        assert "lorem" not in answer
    assert await ask("write a python function") == code


async def test_tokens_gives_exactly_that_many_tokens_of_the_answer(natural_url: str) -> None:
    """``tokens=N`` cuts the answer to N tokens, or lengthens it with more sections, and usage says N."""
    client = sdk(natural_url)
    natural = await client.chat.completions.create(
        model="openai/gpt-5.1", messages=[{"role": "user", "content": "compare two options"}]
    )
    whole = natural.choices[0].message.content
    assert natural.usage.completion_tokens == len(answer_tokens(["compare", "two", "options"], [], None))
    for tokens in (5, 300):
        response = await client.chat.completions.create(
            model="openai/gpt-5.1",
            messages=[{"role": "user", "content": f"compare two options [[standin tokens={tokens}]]"}],
        )
        text = response.choices[0].message.content
        assert response.usage.completion_tokens == tokens
        assert text == expected_answer(["compare", "two", "options"], tokens)
    assert text.startswith(whole)
    assert len(text) > len(whole)
    assert "```python" in text  # the sections of other kinds follow


def title_request(conversation: str) -> dict[str, Any]:
    return {
        "model": "openai/gpt-5-mini",
        "messages": [
            {"role": "system", "content": "Write a short title for this conversation."},
            {"role": "user", "content": conversation},
        ],
    }


async def test_a_title_request_gets_a_short_title_of_the_conversations_words(standin_url: str) -> None:
    response = await sdk(standin_url).chat.completions.create(
        **title_request("User: tell me a story about dragons\n\nAssistant: Once upon a time")
    )
    assert response.choices[0].message.content == "Story about dragons"
    [rec] = await request_log(standin_url)
    assert (rec["kind"], rec["body"]["model"]) == ("title", "openai/gpt-5-mini")


async def test_title_requests_have_a_script_queue_of_their_own(standin_url: str) -> None:
    """`?for=title` scripts the title requests only; the replies' queue never reaches them."""
    async with httpx.AsyncClient(base_url=standin_url) as control:
        (await control.post("/_standin/script?for=title", json=[{"status": 500}])).raise_for_status()
        (await control.post("/_standin/script", json=[{"reply": "scripted reply"}])).raise_for_status()
        assert (await control.get("/_standin/script?for=title")).json() == [{"status": 500}]
    client = sdk(standin_url, max_retries=0)
    reply = await client.chat.completions.create(
        model="openai/gpt-5.1", messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content == "scripted reply"
    with pytest.raises(dedalus_labs.InternalServerError):
        await client.chat.completions.create(**title_request("User: hello"))
    title = await client.chat.completions.create(**title_request("User: hello again"))
    assert title.choices[0].message.content == "Hello again"
    assert [rec["kind"] for rec in await request_log(standin_url)] == ["reply", "title", "title"]


async def test_client_tools_are_called_whole_and_streamed_and_their_results_quoted(standin_url: str) -> None:
    """A question naming one of the request's tools gets that tool called (whole: `message.tool_calls`;
    streamed: pieces of arguments), finish reason `tool_calls`; tool results get text quoting them."""
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    asked = [{"role": "user", "content": "use get_time please"}]
    async with httpx.AsyncClient(base_url=standin_url, headers=USER_AUTH) as http:
        whole = (await http.post("/v1/chat/completions", json={"messages": asked, "tools": tools})).json()
        async with http.stream(
            "POST", "/v1/chat/completions", json={"messages": asked, "tools": tools, "stream": True}
        ) as response:
            events = [
                orjson.loads(line[6:]) async for line in response.aiter_lines() if line.startswith("data: {")
            ]
        call = whole["choices"][0]["message"]["tool_calls"][0]
        result = {"role": "tool", "tool_call_id": call["id"], "content": "Noon"}
        answer = await http.post(
            "/v1/chat/completions",
            json={"messages": [*asked, whole["choices"][0]["message"], result], "tools": tools},
        )

    assert whole["choices"][0]["finish_reason"] == "tool_calls"
    assert (whole["choices"][0]["message"]["content"], call["function"]["name"]) == (None, "get_time")
    assert orjson.loads(call["function"]["arguments"]) == {"query": "use get_time please"}
    pieces = [c for e in events for choice in e["choices"] for c in choice["delta"].get("tool_calls", [])]
    assert len(pieces) > 3
    assert "".join(p["function"]["arguments"] for p in pieces) == call["function"]["arguments"]
    finishes = [choice["finish_reason"] for e in events for choice in e["choices"] if choice["finish_reason"]]
    assert finishes == ["tool_calls"]
    assert answer.json()["choices"][0]["message"]["content"] == (
        f"The tools answered: {call['id']} returned “Noon”. That is all I needed."
    )
