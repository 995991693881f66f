"""A chat completion's body, read within bounds: what is refused, naming its field, and what is taken."""

from __future__ import annotations

import json

import pytest

from conversations.chat.turns import PriorMessage
from conversations.exceptions import InvalidCompletionRequest, UnsupportedParameter
from conversations.openai_api.completion_request import (
    MESSAGES_MAX,
    TOOLS_MAX,
    TOOLS_MAX_CHARS,
    completion_request_parse,
)

HI = [{"role": "user", "content": "hi"}]


def body(**fields: object) -> bytes:
    return json.dumps({"model": "m", "messages": HI, **fields}).encode()


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"[" * 100_000, None),  # nesting past the parser's depth: refused, not a crash
        (b"[]", None),
        (body(model=""), "model"),
        (body(model=7), "model"),
        (body(messages=[]), "messages"),
        (body(messages=[{"role": "user", "content": "x"}] * (MESSAGES_MAX + 1)), "messages"),
        (body(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id"),
        (body(messages=[{"role": "user", "content": {"a": 1}}]), "messages[0].content"),
        (
            body(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]),
            "messages",
        ),
        (body(stream="yes"), "stream"),
        (body(stream_options={"other": 1}), "stream_options"),
        (body(n=2), "n"),
        (body(top_p=2), "top_p"),
        (body(seed=True), "seed"),
        (body(stop=["a"] * 5), "stop"),
        (body(response_format={"type": "xml"}), "response_format"),
        (body(max_tokens=5, max_completion_tokens=5), "max_completion_tokens"),
    ],
)
def test_bad_bodies_are_refused_naming_the_field(raw: bytes, param: str | None) -> None:
    with pytest.raises(InvalidCompletionRequest) as refused:
        completion_request_parse(raw)
    assert refused.value.details.get("param") == param


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (body(logprobs=True), "logprobs"),
        (body(functions=[]), "functions"),
        (body(messages=[{"role": "user", "content": "x", "tool_calls": []}]), "messages[0].tool_calls"),
        (body(messages=[{"role": "tool", "content": "x", "name": "f"}]), "messages[0].name"),
        (body(messages=[{"role": "user", "content": [{"type": "image_url"}]}]), "messages[0].content"),
    ],
)
def test_parameters_outside_the_allowlist_are_named(raw: bytes, param: str) -> None:
    with pytest.raises(UnsupportedParameter) as refused:
        completion_request_parse(raw)
    assert refused.value.details["param"] == param


def test_a_good_body_is_split_into_history_instructions_settings_and_passthrough() -> None:
    parsed = completion_request_parse(
        body(
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": "c"},
                {"role": "developer", "content": "Be kind."},
                {"role": "user", "content": "d\x00"},
            ],
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=10,
            temperature=0.2,
            stop="END",
            user="u-1",
        )
    )
    assert parsed.history == [PriorMessage("user", "ab"), PriorMessage("assistant", "c")]
    assert (parsed.content, parsed.instructions) == ("d", "Be brief.\n\nBe kind.")
    assert (parsed.stream, parsed.include_usage) == (True, True)
    assert parsed.settings == {"max_tokens": 10, "temperature": 0.2}
    assert parsed.passthrough == {"stop": ["END"]}


def tool(name: str = "get_time", **function: object) -> dict[str, object]:
    return {"type": "function", "function": {"name": name, **function}}


CALL = {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (body(tools=[tool("a b")]), "tools[0].function.name"),
        (body(tools=[tool("")]), "tools[0].function.name"),
        (body(tools=[tool("x" * 65)]), "tools[0].function.name"),
        (body(tools=[tool("é")]), "tools[0].function.name"),
        (body(tools=[tool(parameters="{}")]), "tools[0].function.parameters"),
        (body(tools=[tool(), tool()]), "tools"),
        (body(tools=[tool(f"t{i}") for i in range(TOOLS_MAX + 1)]), "tools"),
        (body(tools=[tool(description="d" * TOOLS_MAX_CHARS)]), "tools"),
        (body(tools=[{"type": "code_interpreter"}]), "tools[0]"),
        (body(tool_choice="auto"), "tool_choice"),
        (body(tools=[tool()], tool_choice="sometimes"), "tool_choice"),
        (
            body(tools=[tool()], tool_choice={"type": "function", "function": {"name": "other"}}),
            "tool_choice",
        ),
        (body(tools=[tool()], parallel_tool_calls=1), "parallel_tool_calls"),
        (
            body(messages=[*HI, {"role": "assistant", "content": None, "tool_calls": [{**CALL, "id": ""}]}]),
            "messages[1].tool_calls[0]",
        ),
        (
            body(messages=[*HI, {"role": "assistant", "content": None, "tool_calls": [CALL]}]),
            "messages",  # the last message is the user's or a tool's
        ),
        (
            body(
                messages=[
                    *HI,
                    {"role": "assistant", "content": None, "tool_calls": [CALL]},
                    {"role": "tool", "tool_call_id": "call_other", "content": "noon"},
                ]
            ),
            "messages[2].tool_call_id",
        ),
        (
            body(
                messages=[
                    *HI,
                    {"role": "assistant", "content": None, "tool_calls": [CALL]},
                    {"role": "user", "content": "then"},
                    {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
                ]
            ),
            "messages[3].tool_call_id",  # a user message in between: the call is no longer open
        ),
    ],
)
def test_bad_tools_and_tool_messages_are_refused_naming_the_field(raw: bytes, param: str) -> None:
    with pytest.raises(InvalidCompletionRequest) as refused:
        completion_request_parse(raw)
    assert refused.value.details.get("param") == param


def test_tools_pass_through_and_closing_tool_results_take_the_user_messages_place() -> None:
    tools = [tool(description="The time.", parameters={"type": "object"}, strict=True)]
    parsed = completion_request_parse(
        body(
            messages=[
                *HI,
                {"role": "assistant", "content": None, "tool_calls": [CALL], "refusal": None},
                {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "noon"}]},
            ],
            tools=tools,
            tool_choice={"type": "function", "function": {"name": "get_time"}},
            parallel_tool_calls=False,
        )
    )
    assert parsed.passthrough == {
        "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        "parallel_tool_calls": False,
    }
    assert parsed.history == [PriorMessage("user", "hi"), PriorMessage("assistant", "", tool_calls=[CALL])]
    assert parsed.content == ""
    assert parsed.tool_results == [PriorMessage("tool", "noon", tool_call_id="call_1")]


def test_an_empty_tools_list_sends_nothing_upstream() -> None:
    assert completion_request_parse(body(tools=[], parallel_tool_calls=True)).passthrough == {}
