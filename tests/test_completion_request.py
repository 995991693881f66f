"""A chat completion's body, read within bounds: what is refused, naming its field, and what is taken."""

from __future__ import annotations

import json

import pytest

from conversations.exceptions import InvalidCompletionRequest, UnsupportedParameter
from conversations.openai_api.completion_request import MESSAGES_MAX, completion_request_parse

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
        (body(messages=[{"role": "tool", "content": "x"}]), "messages[0]"),
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
        (body(tools=[]), "tools"),
        (body(functions=[]), "functions"),
        (body(messages=[{"role": "user", "content": "x", "tool_calls": []}]), "messages[0].tool_calls"),
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
    assert parsed.history == [("user", "ab"), ("assistant", "c")]
    assert (parsed.content, parsed.instructions) == ("d", "Be brief.\n\nBe kind.")
    assert (parsed.stream, parsed.include_usage) == (True, True)
    assert parsed.settings == {"max_tokens": 10, "temperature": 0.2}
    assert parsed.passthrough == {"stop": ["END"]}
