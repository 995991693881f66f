"""POST /v1/chat/completions through OpenAI's own Python client (sync and async) against a live Daphne
and the stand-in: replies whole and streamed with the stand-in's text, an agent's handoff in the chunks'
`model`, API conversations stored and continued (by header and by resent history), limits and
refusals OpenAI-shaped, and a client that leaves mid-stream stopping the reply with its text stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import openai
import orjson
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from conversations.models import Agent, Conversation, Message, UsageEntry, UserQuota

from .openai_clients import client, completions_server, key_for, page_tab
from .processes import DaphneServer
from .standin_control import StandIn

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

MODEL = "openai/gpt-5.1"
MESSAGES_PER_MINUTE = 6  # each test's user is a new one, with a count of its own


@pytest.fixture(scope="module")
def api_server(
    standin_server: StandIn, tmp_path_factory: pytest.TempPathFactory, django_db_setup: None
) -> Iterator[DaphneServer]:
    logs = Path(tmp_path_factory.mktemp("completions-logs"))
    server = completions_server(standin_server, logs, messages_per_minute=MESSAGES_PER_MINUTE)
    yield server
    server.stop()


def replies() -> list[Message]:
    return list(Message.objects.filter(role="assistant").order_by("pk"))


def test_a_completion_answers_with_the_standins_text_and_is_stored(api_server: DaphneServer) -> None:
    api = client(api_server, key_for())

    raw = api.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi [[standin reply=Hello%20there]]"}]
    )
    completion = raw.parse()

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == MODEL
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    conversation = Conversation.objects.get()
    assert raw.headers["X-Conversation-Id"] == conversation.session_id
    assert (conversation.source, conversation.owner_key) == ("api", f"u:{conversation.user_id}")
    (reply,) = replies()
    assert (reply.status, reply.content) == ("complete", "Hello there")
    assert reply.total_tokens == completion.usage.total_tokens
    assert UsageEntry.objects.filter(owner_key=conversation.owner_key).exists()


async def test_a_streamed_completion_sends_chunks_done_and_usage(api_server: DaphneServer) -> None:
    key = await sync_to_async(key_for)()
    async with openai.AsyncOpenAI(api_key=key, base_url=f"{api_server.origin}/v1", max_retries=0) as api:
        stream = await api.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi [[standin reply=One%20two%20three%20four]]"},
            ],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        again = await api.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "Hi [[standin reply=One%20two%20three%20four]]"},
                {"role": "assistant", "content": "One two three four"},
                {"role": "user", "content": "More [[standin reply=Five]]"},
            ],
        )
        assert again.choices[0].message.content == "Five"

    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "One two three four"
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens > 0
    first, second = await sync_to_async(replies)()
    assert (first.content, second.content) == (text, "Five")
    assert await Conversation.objects.acount() == 1


def test_a_streamed_response_is_not_buffered_by_proxies(api_server: DaphneServer) -> None:
    key = key_for()
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    url, headers = f"{api_server.origin}/v1/chat/completions", {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", url, json=body, headers=headers) as response:
        lines = [line for line in response.iter_lines() if line]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["cache-control"] == "no-cache"
    assert lines[-1] == "data: [DONE]"


def test_a_silent_model_gets_pings_and_the_openai_client_reads_through_them(
    api_server: DaphneServer,
) -> None:
    key = key_for()
    body = {
        "model": MODEL,
        "stream": True,
        "messages": [{"role": "user", "content": "wait [[standin first_delay_ms=1200 reply=Late]]"}],
    }
    url, headers = f"{api_server.origin}/v1/chat/completions", {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", url, json=body, headers=headers) as response:
        lines = [line for line in response.iter_lines() if line]
    assert ": ping" in lines
    assert lines.index(": ping") < next(i for i, line in enumerate(lines) if "Late" in line)

    stream = client(api_server, key).chat.completions.create(
        model=MODEL, messages=body["messages"], stream=True
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "Late"


def test_an_agent_answers_and_its_handoff_shows_in_the_chunks_model(api_server: DaphneServer) -> None:
    Agent.objects.create(
        slug="helper",
        name="Helper",
        model_names=[MODEL, "anthropic/claude-opus-4-5-20251101"],
        instructions="You help.",
    )
    api = client(api_server, key_for())

    stream = api.chat.completions.create(
        model="helper",
        messages=[{"role": "user", "content": "Hi [[standin tokens=8 handoff_after=3]]"}],
        stream=True,
    )
    models = [chunk.model for chunk in stream if chunk.choices and chunk.choices[0].delta.content]

    assert models[0] == MODEL
    assert models[-1] == "anthropic/claude-opus-4-5-20251101"
    (reply,) = replies()
    assert reply.agent_slug == "helper"
    assert reply.served_models == [MODEL, "anthropic/claude-opus-4-5-20251101"]


def test_a_conversation_continues_by_header_and_by_resent_history(
    api_server: DaphneServer, standin: StandIn
) -> None:
    api = client(api_server, key_for())
    first = [{"role": "user", "content": "First [[standin reply=Answer%20one]]"}]
    raw = api.chat.completions.with_raw_response.create(model=MODEL, messages=first)
    session_id = raw.headers["X-Conversation-Id"]

    resent = [
        *first,
        {"role": "assistant", "content": raw.parse().choices[0].message.content},
        {"role": "user", "content": "Second [[standin reply=Answer%20two]]"},
    ]
    again = api.chat.completions.with_raw_response.create(model=MODEL, messages=resent)
    assert again.headers["X-Conversation-Id"] == session_id
    by_header = api.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Third"}],
        extra_headers={"X-Conversation-Id": session_id},
    )
    assert by_header.headers["X-Conversation-Id"] == session_id

    assert Conversation.objects.count() == 1
    assert [m.content for m in Message.objects.order_by("pk")][:4] == [
        resent[0]["content"],
        "Answer one",
        resent[2]["content"],
        "Answer two",
    ]
    assert Message.objects.count() == 6
    sent = standin.requests()[-1]["body"]["messages"]
    assert [m["content"] for m in sent] == [*(m["content"] for m in resent), "Answer two", "Third"]


def active_branch(session_id: str) -> list[tuple[str, str]]:
    """The (role, text) of the conversation's active branch, first to last."""
    conversation = Conversation.objects.get(session_id=session_id)
    parents = dict(Message.objects.filter(conversation=conversation).values_list("pk", "parent_id"))
    path, node = [], conversation.current_message_id
    while node is not None:
        path.append(node)
        node = parents[node]
    rows = Message.objects.in_bulk(path)
    return [(rows[pk].role, rows[pk].content) for pk in reversed(path)]


def test_an_edited_history_with_the_header_branches_where_it_parts_and_the_model_sees_it(
    api_server: DaphneServer, standin: StandIn
) -> None:
    api = client(api_server, key_for())
    u1 = {"role": "user", "content": "First [[standin reply=One]]"}
    raw = api.chat.completions.with_raw_response.create(model=MODEL, messages=[u1])
    session_id = raw.headers["X-Conversation-Id"]
    header = {"X-Conversation-Id": session_id}
    a1 = {"role": "assistant", "content": "One"}
    u2 = {"role": "user", "content": "Second [[standin reply=Two]]"}
    api.chat.completions.create(model=MODEL, messages=[u1, a1, u2], extra_headers=header)
    stored = active_branch(session_id)
    assert stored == [
        ("user", u1["content"]),
        ("assistant", "One"),
        ("user", u2["content"]),
        ("assistant", "Two"),
    ]

    # The client edited the assistant's first reply: a branch after the first message.
    edited = [
        u1,
        {"role": "assistant", "content": "One, edited"},
        u2,
        {"role": "assistant", "content": "Two"},
    ]
    u3 = {"role": "user", "content": "Third [[standin reply=Three]]"}
    again = api.chat.completions.with_raw_response.create(
        model=MODEL, messages=[*edited, u3], extra_headers=header
    )

    assert again.headers["X-Conversation-Id"] == session_id
    sent = standin.requests()[-1]["body"]["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [(m["role"], m["content"]) for m in [*edited, u3]]
    branch = active_branch(session_id)
    assert branch == [*((m["role"], m["content"]) for m in [*edited, u3]), ("assistant", "Three")]
    assert Conversation.objects.count() == 1
    assert Message.objects.count() == 4 + 5  # the old branch kept, the first message shared
    first = Message.objects.get(content=u1["content"])
    assert Message.objects.filter(parent=first).count() == 2  # "One" and "One, edited": two versions

    # The history of the first branch again: it goes on from there, storing no copy of it.
    back = api.chat.completions.create(
        model=MODEL,
        messages=[u1, a1, u2, {"role": "assistant", "content": "Two"}, {"role": "user", "content": "Fourth"}],
        extra_headers=header,
    )
    assert back.choices[0].message.content
    assert active_branch(session_id)[:5] == [*stored, ("user", "Fourth")]
    assert Message.objects.count() == 9 + 2

    # A dropped last turn (a client's "regenerate"): a new version of it, after the first reply.
    api.chat.completions.create(model=MODEL, messages=[u1, a1, u2], extra_headers=header)
    assert active_branch(session_id)[:3] == stored[:3]
    assert len(active_branch(session_id)) == 4
    assert Message.objects.count() == 11 + 2
    assert Message.objects.filter(content=u2["content"]).count() == 3  # each branch's


def test_a_history_trimmed_to_the_branchs_end_with_the_header_goes_on_from_its_leaf(
    api_server: DaphneServer, standin: StandIn
) -> None:
    api = client(api_server, key_for())
    u1 = {"role": "user", "content": "First [[standin reply=One]]"}
    raw = api.chat.completions.with_raw_response.create(model=MODEL, messages=[u1])
    header = {"X-Conversation-Id": raw.headers["X-Conversation-Id"]}
    a1 = {"role": "assistant", "content": "One"}
    u2 = {"role": "user", "content": "Second [[standin reply=Two]]"}
    api.chat.completions.create(model=MODEL, messages=[u1, a1, u2], extra_headers=header)

    # A client that keeps only its last exchange (to fit its own context): the stored branch goes on.
    u3 = {"role": "user", "content": "Third [[standin reply=Three]]"}
    api.chat.completions.create(
        model=MODEL, messages=[u2, {"role": "assistant", "content": "Two"}, u3], extra_headers=header
    )

    sent = standin.requests()[-1]["body"]["messages"]
    assert [m["content"] for m in sent] == [u1["content"], "One", u2["content"], "Two", u3["content"]]
    assert [text for _, text in active_branch(header["X-Conversation-Id"])] == [
        u1["content"],
        "One",
        u2["content"],
        "Two",
        u3["content"],
        "Three",
    ]
    assert Message.objects.count() == 6


def test_the_stored_branch_resent_with_the_header_goes_on_from_its_leaf(
    api_server: DaphneServer, standin: StandIn
) -> None:
    api = client(api_server, key_for())
    u1 = {"role": "user", "content": "Hello [[standin status=500]]"}
    raw = api.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}]
    )
    session_id = raw.headers["X-Conversation-Id"]
    header = {"X-Conversation-Id": session_id}
    reply = raw.parse().choices[0].message.content
    # A reply that ended without text, never seen: an error status, or an error event once the stream
    # began (past CHAT_API_PING_SECONDS, with the relay's retries).
    with pytest.raises(openai.APIError):
        for _ in api.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": reply}, u1],
            extra_headers=header,
            stream=True,
        ):
            pass

    api.chat.completions.create(  # the client keeps its message that got no reply
        model=MODEL,
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": reply},
            u1,
            {"role": "user", "content": "Again"},
        ],
        extra_headers=header,
    )

    failed = Message.objects.get(role="assistant", status="error")
    assert Message.objects.get(content="Again").parent_id == failed.pk  # no branch: the leaf goes on
    assert Message.objects.count() == 6


def test_a_new_history_is_stored_with_its_earlier_turns(api_server: DaphneServer) -> None:
    api = client(api_server, key_for())
    messages = [
        {"role": "user", "content": "Earlier question"},
        {"role": "assistant", "content": "Earlier answer"},
        {"role": "user", "content": "Now [[standin reply=Now%20then]]"},
    ]
    completion = api.chat.completions.create(model=MODEL, messages=messages)
    assert completion.choices[0].message.content == "Now then"
    assert [(m.role, m.content) for m in Message.objects.order_by("pk")] == [
        *((m["role"], m["content"]) for m in messages),
        ("assistant", "Now then"),
    ]


def test_api_conversations_are_listed_by_their_source(api_server: DaphneServer) -> None:
    api = client(api_server, key_for())
    raw = api.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}]
    )
    page = Client()
    page.force_login(get_user_model().objects.get(username="ada"))

    listed = page.get("/api/conversations/?source=api").json()["conversations"]

    assert [(c["session_id"], c["source"]) for c in listed] == [(raw.headers["X-Conversation-Id"], "api")]
    assert page.get("/api/conversations/?source=page").json()["conversations"] == []
    assert page.get("/api/conversations/?source=x").json()["code"] == "invalid_source"


def test_malformed_and_oversized_bodies_are_refused_openai_shaped(api_server: DaphneServer) -> None:
    key = key_for()
    url, headers = f"{api_server.origin}/v1/chat/completions", {"Authorization": f"Bearer {key}"}
    broken = httpx.post(url, content=b"{not json", headers=headers)
    no_messages = httpx.post(url, json={"model": MODEL, "messages": []}, headers=headers)
    bad_role = httpx.post(url, json={"model": MODEL, "messages": [{"role": "robot"}]}, headers=headers)
    huge = httpx.post(url, content=b"x" * (settings.CHAT_REQUEST_MAX_BYTES + 1), headers=headers)

    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "invalid_request")
    assert no_messages.json()["error"]["param"] == "messages"
    assert bad_role.json()["error"]["param"] == "messages[0]"
    assert (huge.status_code, huge.json()["error"]["code"]) == (413, "request_too_large")
    assert not Conversation.objects.exists()


def test_an_unknown_conversation_id_is_refused(api_server: DaphneServer) -> None:
    api = client(api_server, key_for())
    with pytest.raises(openai.NotFoundError) as refused:
        api.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Conversation-Id": "nope"},
        )
    assert refused.value.body["code"] == "conversation_not_found"
    assert not Conversation.objects.exists()


def test_unknown_and_out_of_scope_models_are_refused(api_server: DaphneServer) -> None:
    Agent.objects.create(slug="helper", name="Helper", model_names=[MODEL])
    Agent.objects.create(slug="critic", name="Critic", model_names=[MODEL])
    scoped = client(api_server, key_for(scope=["critic"]))
    hi = [{"role": "user", "content": "hi"}]

    with pytest.raises(openai.PermissionDeniedError) as forbidden:
        scoped.chat.completions.create(model="helper", messages=hi)
    with pytest.raises(openai.NotFoundError) as unknown:
        scoped.chat.completions.create(model="no/such-model", messages=hi)

    assert (forbidden.value.status_code, forbidden.value.body["code"]) == (403, "model_not_allowed")
    assert (unknown.value.body["code"], unknown.value.body["param"]) == ("model_not_found", "model")
    assert scoped.chat.completions.create(model="critic", messages=hi).choices[0].message.content
    assert Conversation.objects.count() == 1


def test_parameters_outside_the_allowlist_are_refused_by_name(api_server: DaphneServer) -> None:
    api = client(api_server, key_for())
    hi = [{"role": "user", "content": "hi"}]

    with pytest.raises(openai.BadRequestError) as logprobs:
        api.chat.completions.create(model=MODEL, messages=hi, logprobs=True)
    with pytest.raises(openai.BadRequestError) as functions:  # the old name of tools: not taken
        api.chat.completions.create(
            model=MODEL,
            messages=hi,
            functions=[{"name": "f", "parameters": {"type": "object"}}],
        )
    with pytest.raises(openai.BadRequestError) as temperature:
        api.chat.completions.create(model=MODEL, messages=hi, temperature=7)

    assert logprobs.value.body["code"] == "unsupported_parameter"
    assert logprobs.value.body["param"] == "logprobs"
    assert functions.value.body["param"] == "functions"
    assert temperature.value.body["code"] == "invalid_settings"
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()


def test_passthrough_parameters_reach_the_upstream(api_server: DaphneServer, standin: StandIn) -> None:
    api = client(api_server, key_for())
    api.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        temperature=0.5,
        top_p=0.9,
        seed=7,
        stop=["END"],
        max_completion_tokens=50,
        response_format={"type": "json_object"},
        user="someone",
    )
    body = standin.requests()[-1]["body"]
    assert (body["temperature"], body["top_p"], body["seed"], body["stop"], body["max_tokens"]) == (
        0.5,
        0.9,
        7,
        ["END"],
        50,
    )
    assert body["response_format"] == {"type": "json_object"}
    assert "user" not in body


def test_over_the_quota_the_client_gets_a_rate_limit_error(api_server: DaphneServer) -> None:
    api = client(api_server, key_for())
    hi = [{"role": "user", "content": "hi"}]
    api.chat.completions.create(model=MODEL, messages=hi)
    UserQuota.objects.create(user=get_user_model().objects.get(username="ada"), daily_tokens=1)

    with pytest.raises(openai.RateLimitError) as refused:
        api.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "again"}])

    assert refused.value.body["code"] == "quota_exceeded"
    assert int(refused.value.response.headers["Retry-After"]) > 0
    assert Message.objects.count() == 2


def test_upstream_failures_are_mapped_and_stored(api_server: DaphneServer) -> None:
    api = client(api_server, key_for())

    with pytest.raises(openai.APIStatusError) as payment:
        api.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "pay [[standin status=402]]"}]
        )
    stream = api.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "drop [[standin tokens=20 drop_after=5]]"}],
        stream=True,
    )
    texts: list[str] = []

    def read() -> None:
        texts.extend(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    with pytest.raises(openai.APIError) as dropped:
        read()
    seen = "".join(texts)

    assert (payment.value.status_code, payment.value.body["code"]) == (402, "upstream_payment_required")
    assert payment.value.response.headers["X-Conversation-Id"]
    assert dropped.value.body["code"] == "upstream_error"
    first, second = replies()
    assert (first.status, first.content) == ("error", "")
    assert second.status == "error"
    assert second.content == seen
    assert seen


def test_a_client_that_leaves_mid_stream_stops_the_reply_and_its_text_is_stored(
    api_server: DaphneServer,
) -> None:
    api = client(api_server, key_for())
    stream = api.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "long [[standin tokens=400 delay_ms=20]]"}],
        stream=True,
    )
    seen = ""
    for chunk in stream:
        seen += chunk.choices[0].delta.content or ""
        if len(seen) > 20:
            break
    stream.close()

    deadline = time.monotonic() + 10
    while (reply := replies()[0]).status == "streaming" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reply.status == "interrupted"
    assert reply.content.startswith(seen)
    assert len(reply.content) < 400 * 3


def test_a_client_that_leaves_a_whole_completion_stops_it_too(api_server: DaphneServer) -> None:
    key = key_for()
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "long [[standin tokens=400 delay_ms=20]]"}],
    }
    url, headers = f"{api_server.origin}/v1/chat/completions", {"Authorization": f"Bearer {key}"}
    # After CHAT_API_PING_SECONDS (0.3) the response starts, kept alive by whitespace: the client leaves
    # then (before it: tests/test_openai_long_replies.py).
    with httpx.stream("POST", url, json=body, headers=headers, timeout=10) as response:
        assert next(response.iter_raw()).startswith(b"\n")

    deadline = time.monotonic() + 10
    while (reply := replies()[0]).status == "streaming" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reply.status == "interrupted"
    assert reply.content
    assert reply.total_tokens > 0  # what it streamed counts against the quota


async def test_a_tab_open_on_an_api_conversation_sees_its_reply_stream(api_server: DaphneServer) -> None:
    key = await sync_to_async(key_for)()
    async with (
        openai.AsyncOpenAI(api_key=key, base_url=f"{api_server.origin}/v1", max_retries=0) as api,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        first = await api.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )
        session_id = first.headers["X-Conversation-Id"]
        tab = await page_tab(http, api_server, session_id)
        history = orjson.loads((await tab.receive(timeout=10)).data)
        assert [m["role"] for m in history["messages"]] == ["user", "assistant"]

        stream = await api.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "more [[standin reply=Seen%20in%20the%20tab]]"}],
            stream=True,
            extra_headers={"X-Conversation-Id": session_id},
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
        frames = []
        while not frames or frames[-1]["type"] not in ("done", "error"):
            frames.append(orjson.loads((await tab.receive(timeout=10)).data))
        await tab.close()

    assert text == "Seen in the tab"
    assert frames[0]["type"] == "start"
    assert "".join(frame["content"] for frame in frames if frame["type"] == "chunk") == text
    assert frames[-1]["type"] == "done"


def test_the_users_message_rate_holds_for_the_api_too(api_server: DaphneServer) -> None:
    api = client(api_server, key_for())
    per_minute = MESSAGES_PER_MINUTE
    for index in range(per_minute):
        api.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"{index} [[standin reply=ok]]"}]
        )

    with pytest.raises(openai.RateLimitError) as refused:
        api.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one more"}])

    assert refused.value.body["code"] == "rate_limited"
    assert int(refused.value.response.headers["Retry-After"]) > 0
    assert Message.objects.filter(role="user").count() == per_minute


def test_a_conversation_whose_reply_streams_is_busy(api_server: DaphneServer) -> None:
    api = client(api_server, key_for())
    stream = api.chat.completions.with_streaming_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "long [[standin tokens=200 delay_ms=20]]"}],
        stream=True,
    )
    with stream as response:
        session_id = response.headers["X-Conversation-Id"]
        with pytest.raises(openai.ConflictError) as busy:
            api.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "meanwhile"}],
                extra_headers={"X-Conversation-Id": session_id},
            )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices)

    assert busy.value.body["code"] == "busy"
    assert text
    assert Message.objects.count() == 2


def test_a_thinking_models_reasoning_comes_apart_from_its_text(api_server: DaphneServer) -> None:
    api = client(api_server, key_for())
    ask = "think [[standin reasoning=reasoning_content reasoning_text=Pondering reasoning_ms=200 reply=Done]]"
    messages = [{"role": "user", "content": ask}]

    stream = api.chat.completions.create(model=MODEL, messages=messages, stream=True)
    deltas = [chunk.choices[0].delta for chunk in stream if chunk.choices]
    whole = api.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"again {ask}"}])

    assert "".join((delta.model_extra or {}).get("reasoning_content", "") for delta in deltas) == "Pondering"
    assert "".join(delta.content or "" for delta in deltas) == "Done"
    assert whole.choices[0].message.content == "Done"
    assert (whole.choices[0].message.model_extra or {})["reasoning_content"] == "Pondering"


def test_an_agents_locks_and_instructions_hold_for_the_api(
    api_server: DaphneServer, standin: StandIn
) -> None:
    Agent.objects.create(
        slug="locked",
        name="Locked",
        model_names=[MODEL],
        instructions="Agent rules.",
        settings={"temperature": 0.1},
        user_may_change_settings=False,
    )
    api = client(api_server, key_for())
    messages = [{"role": "system", "content": "Client rules."}, {"role": "user", "content": "hi"}]

    with pytest.raises(openai.BadRequestError) as temperature:
        api.chat.completions.create(model="locked", messages=messages, temperature=0.9)
    with pytest.raises(openai.BadRequestError) as top_p:
        api.chat.completions.create(model="locked", messages=messages, top_p=0.5)
    api.chat.completions.create(model="locked", messages=messages)

    assert temperature.value.body["code"] == top_p.value.body["code"] == "invalid_settings"
    body = standin.requests()[-1]["body"]
    assert body["temperature"] == 0.1
    assert body["messages"][0] == {"role": "system", "content": "Agent rules.\n\nClient rules."}
    assert Message.objects.count() == 2
