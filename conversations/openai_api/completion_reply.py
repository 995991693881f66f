"""A reply as OpenAI's API shows one: a listener in the conversation's room turns the relay's frames
(`start`, `chunk`, `done`, `error`) into spans of text, each named by the model that wrote it (after a
handoff, the next), and the end; `chunk_object`, `completion_object` and `usage_object` shape them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..relay.live import LiveReply

# The reasons OpenAI's clients know; the relay's others (stopped, refusal, ...) end as `stop`, or
# `content_filter` for a refusal.
FINISH_REASONS = {"stop", "length", "content_filter", "tool_calls"}
# A tool call's arguments stream in pieces of at most this many characters, as OpenAI's do.
ARGUMENTS_PIECE_CHARS = 512


@dataclass(frozen=True, slots=True)
class Span:
    model: str
    text: str
    reasoning: bool = False  # the model's thinking, sent as `reasoning_content` as gateways do


class ReplyListener:
    """Subscribed to a conversation's room before its turn starts: takes the first `start` (the turn's,
    as only one reply streams at a time) and then that reply's frames, in order, as Spans and its end
    frame (a dict), on `queue`, which holds the whole reply at most."""

    def __init__(self, live_reply: Callable[[], LiveReply | None], *, ended: Callable[[], None]) -> None:
        self.queue: asyncio.Queue[Span | dict[str, Any]] = asyncio.Queue()
        self.reply_id: int | None = None
        self.model = ""
        self._live_reply = live_reply
        # Called at the reply's end: the listener leaves the room then, whether or not its reader ever
        # started (a client that left before the response began is never read).
        self._ended = ended

    async def send(self, text: str) -> None:
        frame = json.loads(text)
        kind = frame.get("type")
        if kind == "start" and self.reply_id is None:
            self.reply_id, self.model = frame["message_id"], frame["model"]
        elif frame.get("message_id") != self.reply_id or self.reply_id is None:
            return
        elif kind == "chunk":
            for span in self._spans(frame["content"], frame["offset"]):
                self.queue.put_nowait(span)
        elif kind == "reasoning":
            reply = self._live_reply()
            model = reply.served_models[-1] if reply is not None and reply.served_models else self.model
            self.queue.put_nowait(Span(model, frame["content"], reasoning=True))
        elif kind in ("done", "error"):
            self.queue.put_nowait(frame)
            self._ended()

    def _spans(self, text: str, offset: int) -> list[Span]:
        """The chunk's text cut where another model took over, each part named by its model."""
        reply = self._live_reply()
        models = list(reply.served_models) if reply is not None else []
        starts = [0, *(reply.handoff_offsets if reply is not None else [])]
        spans: list[Span] = []
        for index, begin in enumerate(starts):
            end = starts[index + 1] if index + 1 < len(starts) else None
            lo, hi = max(begin, offset), offset + len(text) if end is None else min(end, offset + len(text))
            if lo < hi:
                model = models[index] if index < len(models) else (models[-1] if models else self.model)
                spans.append(Span(model, text[lo - offset : hi - offset]))
        return spans or [Span(models[-1] if models else self.model, text)]


def finish_reason(frame: dict[str, Any]) -> str:
    reason = frame.get("finish_reason") or "stop"
    if reason == "refusal":
        return "content_filter"
    if reason == "tool_calls" and not frame.get("tool_calls"):
        return "stop"  # the upstream's own (MCP) tools: nothing for the client to run
    return reason if reason in FINISH_REASONS else "stop"


def tool_call_deltas(calls: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A reply's tool calls as the `delta.tool_calls` of successive chunks, as OpenAI streams them: each
    call's id, type and name with empty arguments, then its arguments in pieces."""
    deltas: list[list[dict[str, Any]]] = []
    for index, call in enumerate(calls):
        function = call["function"]
        deltas.append(
            [
                {
                    "index": index,
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": function["name"], "arguments": ""},
                }
            ]
        )
        arguments = function["arguments"]
        for start in range(0, len(arguments), ARGUMENTS_PIECE_CHARS):
            piece = arguments[start : start + ARGUMENTS_PIECE_CHARS]
            deltas.append([{"index": index, "function": {"arguments": piece}}])
    return deltas


def usage_object(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    shaped: dict[str, Any] = {
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
        "total_tokens": usage.get("total_tokens", 0),
    }
    if "reasoning_tokens" in usage:
        shaped["completion_tokens_details"] = {"reasoning_tokens": usage["reasoning_tokens"]}
    if "cached_tokens" in usage:
        shaped["prompt_tokens_details"] = {"cached_tokens": usage["cached_tokens"]}
    return shaped


def chunk_object(
    *, reply_id: int, created: int, model: str, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{reply_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def completion_object(
    *, reply_id: int, created: int, model: str, text: str, reasoning: str, end: dict[str, Any]
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if end.get("tool_calls"):
        message["tool_calls"] = end["tool_calls"]
        message["content"] = text or None  # as OpenAI answers a reply that only calls tools
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": f"chatcmpl-{reply_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(end),
            }
        ],
        "usage": usage_object(end.get("usage")),
    }
