"""Client tools through POST /v1/chat/completions, with OpenAI's own Python client (sync and async) against
a live Daphne and the stand-in: the tools go upstream, the model's tool calls come back whole and streamed
with finish reason `tool_calls`, the client's tool results continue the same conversation (by header and by
resent history) and the model sees them; a malformed tools list is refused naming its field, storing
nothing; the stored conversation still opens, and goes on, on the chat page's socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import openai
import orjson
import pytest
from asgiref.sync import sync_to_async

from conversations.models import Agent, Conversation, Message

from .openai_clients import client, completions_server, key_for, page_tab
from .processes import DaphneServer
from .standin_control import StandIn

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

MODEL = "openai/gpt-5.1"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
TOOLS = [WEATHER, CLOCK]


@pytest.fixture(scope="module")
def api_server(
    standin_server: StandIn, tmp_path_factory: pytest.TempPathFactory, django_db_setup: None
) -> Iterator[DaphneServer]:
    logs = Path(tmp_path_factory.mktemp("tools-logs"))
    server = completions_server(standin_server, logs, messages_per_minute=100)
    yield server
    server.stop()


def stored() -> list[tuple[str, str, list, str]]:
    return [(m.role, m.content, m.tool_calls, m.tool_call_id) for m in Message.objects.order_by("pk")]


def test_a_whole_reply_carries_the_tool_calls_and_the_tool_result_continues_it(
    api_server: DaphneServer, standin: StandIn
) -> None:
    api = client(api_server, key_for())
    asked = [{"role": "user", "content": "Weather in Paris? [[standin call=get_weather]]"}]

    called = api.chat.completions.create(model=MODEL, messages=asked, tools=TOOLS, tool_choice="auto")

    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert (call.type, call.function.name) == ("function", "get_weather")
    assert json.loads(call.function.arguments) == {"query": "Weather in Paris?"}
    upstream = standin.requests()[-1]["body"]
    assert (upstream["tools"], upstream["tool_choice"]) == (TOOLS, "auto")

    # The client sends back the assistant message as the SDK gave it, then its tool's result.
    result = {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"}
    answered = api.chat.completions.create(
        model=MODEL, messages=[*asked, choice.message, result], tools=TOOLS
    )

    assert answered.choices[0].finish_reason == "stop"
    assert answered.choices[0].message.content == (
        f"The tools answered: {call.id} returned “Sunny, 21 C”. That is all I needed."
    )
    sent = standin.requests()[-1]["body"]["messages"]
    assert sent[1:] == [
        {"role": "assistant", "content": "", "tool_calls": [call.model_dump(exclude_none=True)]},
        result,
    ]
    assert Conversation.objects.count() == 1
    assert stored() == [
        ("user", asked[0]["content"], [], ""),
        ("assistant", "", [call.model_dump(exclude_none=True)], ""),
        ("tool", "Sunny, 21 C", [], call.id),
        ("assistant", answered.choices[0].message.content, [], ""),
    ]


async def test_streamed_tool_calls_come_in_pieces_and_the_result_continues_by_header(
    api_server: DaphneServer, standin: StandIn
) -> None:
    arguments = json.dumps({"city": "Paris " * 200})  # long enough for several pieces
    await sync_to_async(standin.script)({"call": "get_weather,get_time", "call_arguments": arguments})
    key = await sync_to_async(key_for)()
    async with openai.AsyncOpenAI(api_key=key, base_url=f"{api_server.origin}/v1", max_retries=0) as api:
        asked = [{"role": "user", "content": "Weather and time?"}]
        raw = await api.chat.completions.with_raw_response.create(
            model=MODEL, messages=asked, tools=TOOLS, stream=True, parallel_tool_calls=True
        )
        session_id = raw.headers["X-Conversation-Id"]
        chunks = [chunk async for chunk in raw.parse()]
        pieces = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
        ids = {piece.index: piece.id for piece in pieces if piece.id}
        joined = {index: "" for index in ids}
        for piece in pieces:
            joined[piece.index] += piece.function.arguments or ""
        results = [
            {"role": "tool", "tool_call_id": ids[0], "content": "Sunny"},
            {"role": "tool", "tool_call_id": ids[1], "content": "Noon"},
        ]
        calls = [
            {"id": ids[i], "type": "function", "function": {"name": name, "arguments": joined[i]}}
            for i, name in enumerate(["get_weather", "get_time"])
        ]
        follow = await api.chat.completions.create(
            model=MODEL,
            messages=[{"role": "assistant", "content": None, "tool_calls": calls}, *results],
            tools=TOOLS,
            stream=True,
            extra_headers={"X-Conversation-Id": session_id},
        )
        text = "".join([c.choices[0].delta.content or "" async for c in follow if c.choices])

    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    assert len([piece for piece in pieces if piece.index == 0]) > 2
    assert joined == {0: arguments, 1: arguments}
    assert [p.function.name for p in pieces if p.function.name] == ["get_weather", "get_time"]
    assert (
        text
        == f"The tools answered: {ids[0]} returned “Sunny”; {ids[1]} returned “Noon”. That is all I needed."
    )
    assert await Conversation.objects.acount() == 1
    assert [row[0] for row in await sync_to_async(stored)()] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    first_request = (await sync_to_async(standin.requests)())[0]["body"]
    assert (first_request["tools"], first_request["parallel_tool_calls"]) == (TOOLS, True)


def test_tool_results_of_a_history_never_stored_start_a_conversation_titled_by_its_question(
    api_server: DaphneServer, standin: StandIn
) -> None:
    call = {"id": "call_x", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "What time is it in Lisbon?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_x", "content": "Noon"},
    ]
    answered = client(api_server, key_for()).chat.completions.create(model=MODEL, messages=messages)

    assert answered.choices[0].message.content.startswith("The tools answered: call_x returned “Noon”")
    assert Conversation.objects.get().title == "What time is it in Lisbon?"
    assert [(role, calls, call_id) for role, _, calls, call_id in stored()] == [
        ("user", [], ""),
        ("assistant", [call], ""),
        ("tool", [], "call_x"),
        ("assistant", [], ""),
    ]
    assert standin.requests()[-1]["body"]["messages"] == [
        messages[0],
        {**messages[1], "content": ""},
        messages[2],
    ]


def test_tool_results_sent_by_header_without_the_call_they_answer_are_refused(
    api_server: DaphneServer,
) -> None:
    api = client(api_server, key_for())
    raw = api.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hi [[standin reply=Hello]]"}]
    )
    # Tool results come after the assistant message that called them, in the request (with the header,
    # a history that repeats the stored branch's end, or leaves it: the client's wins, as a branch).
    with pytest.raises(openai.BadRequestError) as refused:
        api.chat.completions.create(
            model=MODEL,
            messages=[{"role": "tool", "tool_call_id": "call_z", "content": "Noon"}],
            extra_headers={"X-Conversation-Id": raw.headers["X-Conversation-Id"]},
        )
    assert (refused.value.body["code"], refused.value.body["param"]) == (
        "invalid_request",
        "messages[0].tool_call_id",
    )
    assert [row[0] for row in stored()] == ["user", "assistant"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "function", "function": {"name": "x" * 65}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0]"),
        ({"tools": [CLOCK] * 129}, "tools"),
        ({"tools": "get_time"}, "tools"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"tools": TOOLS, "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ],
)
def test_a_malformed_tools_request_is_refused_naming_its_field_and_stores_nothing(
    api_server: DaphneServer, standin: StandIn, fields: dict, param: str
) -> None:
    api = client(api_server, key_for())
    with pytest.raises(openai.BadRequestError) as refused:
        api.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], **fields)
    assert refused.value.body["param"] == param
    assert Conversation.objects.count() == Message.objects.count() == 0
    assert standin.requests() == []


def test_an_agent_that_keeps_its_settings_refuses_client_tools(api_server: DaphneServer) -> None:
    Agent.objects.create(slug="locked", name="Locked", model_names=[MODEL], user_may_change_settings=False)
    api = client(api_server, key_for())
    with pytest.raises(openai.BadRequestError) as refused:
        api.chat.completions.create(model="locked", messages=[{"role": "user", "content": "hi"}], tools=TOOLS)
    assert refused.value.body["code"] == "invalid_settings"
    assert Message.objects.count() == 0


async def test_a_conversation_with_tool_calls_opens_and_goes_on_in_the_page(
    api_server: DaphneServer, standin: StandIn
) -> None:
    key = await sync_to_async(key_for)()
    async with (
        openai.AsyncOpenAI(api_key=key, base_url=f"{api_server.origin}/v1", max_retries=0) as api,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        asked = [{"role": "user", "content": "Time? [[standin call=get_time]]"}]
        raw = await api.chat.completions.with_raw_response.create(model=MODEL, messages=asked, tools=TOOLS)
        message = raw.parse().choices[0].message
        result = {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "Noon"}
        await api.chat.completions.create(model=MODEL, messages=[*asked, message, result], tools=TOOLS)

        session_id = raw.headers["X-Conversation-Id"]
        tab = await page_tab(http, api_server, session_id)
        history = orjson.loads((await tab.receive(timeout=10)).data)
        await tab.send_json({"message": "And tomorrow? [[standin reply=Also%20noon]]"})
        frames = []
        while not frames or frames[-1]["type"] not in ("done", "error"):
            frames.append(orjson.loads((await tab.receive(timeout=10)).data))
        await tab.close()
        async with http.get(f"{api_server.origin}/c/{session_id}/export.md") as exported:
            markdown = await exported.text()

    assert history["type"] == "history"
    shown = [(m["role"], m["content"], m["tool_call_id"]) for m in history["messages"]]
    assert shown == [
        ("user", asked[0]["content"], ""),
        ("assistant", "", ""),
        ("tool", "Noon", message.tool_calls[0].id),
        (
            "assistant",
            f"The tools answered: {message.tool_calls[0].id} returned “Noon”. That is all I needed.",
            "",
        ),
    ]
    assert history["messages"][1]["tool_calls"][0]["function"]["name"] == "get_time"
    assert frames[-1]["type"] == "done"
    assert "".join(f["content"] for f in frames if f["type"] == "chunk") == "Also noon"
    # The page's turn defines no tools: providers refuse tool calls in its history, so they go as text.
    sent = (await sync_to_async(standin.requests)())[-1]["body"]["messages"]
    call_id = message.tool_calls[0].id
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert not any("tool_calls" in m or "tool_call_id" in m for m in sent)
    assert sent[1]["content"] == f'[Called tool get_time ({call_id}): {{"query": "Time?"}}]'
    assert sent[2]["content"] == f"[Result of tool call {call_id}]\nNoon"
    assert '_Called `get_time` with `{"query": "Time?"}`_' in markdown
    assert "## Tool result · " in markdown
