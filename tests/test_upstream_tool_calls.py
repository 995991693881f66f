"""The upstream stream's tool calls: pieces gathered per index into the API client's calls when the reply
ends for them (finish reason `tool_calls`), the MCP servers' calls otherwise, and a bounded gathering."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from conversations.exceptions import UpstreamError
from conversations.upstream.chat import (
    TOOL_CALL_MAX_CHARS,
    TOOL_CALLS_MAX,
    TextDelta,
    ToolActivity,
    ToolCalls,
    _events_from_lines,
    _StreamState,
)


def line(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk)


def calls_delta(*calls: dict[str, Any], finish: str | None = None) -> bytes:
    return line({"choices": [{"index": 0, "delta": {"tool_calls": list(calls)}, "finish_reason": finish}]})


def test_pieces_join_per_index_into_the_clients_tool_calls_at_a_tool_calls_finish() -> None:
    state = _StreamState(client_tools=True)
    events = _events_from_lines(
        [
            line({"choices": [{"delta": {"content": "Let me look. "}}]}),
            calls_delta(
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}
            ),
            calls_delta(
                {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": '{"'}}
            ),
            calls_delta({"index": 0, "function": {"arguments": '{"x": '}}),
            calls_delta(
                {"index": 0, "function": {"arguments": "1}"}},
                {"index": 1, "function": {"arguments": 'y": 2}'}},
            ),
        ],
        state,
    )
    assert [type(event) for event in events] == [TextDelta]  # the calls wait for the reply's end
    events = _events_from_lines([line({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]})], state)
    assert events == [
        ToolCalls(
            [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
                {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": '{"y": 2}'}},
            ]
        )
    ]


def test_a_tool_calls_finish_without_the_clients_tools_is_an_mcp_step() -> None:
    # A request that offered no tools of the client's (the page's, an API call without `tools`): its
    # calls are the MCP servers', whatever finish reason the API's step of them ends with.
    events = _events_from_lines(
        [
            calls_delta({"index": 0, "id": "c", "function": {"name": "search", "arguments": "{}"}}),
            line({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
        ],
        _StreamState(),
    )
    assert [(type(e), getattr(e, "phase", None)) for e in events] == [(ToolActivity, "call")]


def test_calls_followed_by_the_servers_results_stay_mcp_activity() -> None:
    events = _events_from_lines(
        [
            calls_delta({"index": 0, "id": "c", "function": {"name": "search", "arguments": '{"q": 1}'}}),
            line({"choices": [], "mcp_tool_results": [{"tool_name": "search", "result": "ok"}]}),
            line({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
        ],
        _StreamState(client_tools=True),
    )
    assert [(type(e), getattr(e, "phase", None)) for e in events] == [
        (ToolActivity, "call"),
        (ToolActivity, "result"),
    ]


@pytest.mark.parametrize(
    "lines",
    [
        [calls_delta(*({"index": i, "function": {"name": "f"}} for i in range(TOOL_CALLS_MAX + 1)))],
        [calls_delta({"index": 0, "function": {"name": "f", "arguments": "x" * (TOOL_CALL_MAX_CHARS + 1)}})],
        [calls_delta({"index": "zero", "function": {"name": "f"}})],
        [line({"choices": [{"delta": {"tool_calls": {"index": 0}}}]})],
    ],
)
def test_too_many_too_long_or_malformed_tool_calls_fail_the_reply(lines: list[bytes]) -> None:
    with pytest.raises(UpstreamError):
        _events_from_lines(lines, _StreamState())
