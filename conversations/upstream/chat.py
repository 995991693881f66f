"""Chat completions: one streamed reply in, plain events out; and one short completion (a title).

The stream goes over the instance's aiohttp session and its server-sent events are parsed here, so no
pydantic object is built per chunk and no httpx layer sits on every read. Everything that arrived in one
socket read becomes one `TextDelta`: deltas already waiting are coalesced, and nothing waits on a timer.
Retries (before the first token only) are ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp
import orjson
from django.conf import settings

from ..exceptions import NotConfigured, UpstreamError
from ..text import json_storable, text_storable
from .client import UpstreamClient
from .errors import request_errors, status_error, stream_broken, stream_error, timeout_error
from .mcp_wire import mcp_servers_wire
from .reasoning import REASONING_KEYS, ThinkSplit, reasoning_of

logger = logging.getLogger(__name__)

# Whether a delta has none of the fields reasoning comes in (bound once: the check runs on every delta).
_reasoning_absent = REASONING_KEYS.isdisjoint

MAX_RETRY_DELAY = 8.0
# A reply's tool calls, as gathered from their streamed pieces: at most this many, this long each.
TOOL_CALLS_MAX = 128
TOOL_CALL_MAX_CHARS = 100_000
# A request with MCP credentials refused with one of these may have used a key the server dropped.
KEY_REFUSED_STATUSES = frozenset({400, 401, 403, 422})


@dataclass(slots=True)
class TextDelta:
    """Reply text that arrived together, and when it was read off the upstream socket (loop time)."""

    text: str
    received_at: float = 0.0


@dataclass(slots=True)
class ReasoningDelta:
    """The model's reasoning that arrived together (never part of the reply's text)."""

    text: str


@dataclass(slots=True)
class ToolActivity:
    """An MCP tool call the upstream made (`phase="call"`) or its result (`phase="result"`)."""

    phase: str
    name: str
    arguments: Any = None
    result: Any = None
    server: str | None = None
    is_error: bool = False
    duration_ms: float | None = None  # how long the server-side tool ran, when the API says


@dataclass(slots=True)
class ToolCalls:
    """The API client's tools the model called, whole, in OpenAI's shape (`{id, type, function: {name,
    arguments}}`): the reply ends with them (finish reason `tool_calls`) for the client to run."""

    calls: list[dict[str, Any]]


@dataclass(slots=True)
class Finish:
    """The end of a reply: why it ended and the token usage, when the upstream reported them."""

    reason: str | None
    usage: dict[str, int] | None = None


Event = TextDelta | ReasoningDelta | ToolActivity | ToolCalls | Finish


@dataclass(slots=True)
class _StreamState:
    """What the parser has seen so far in one stream."""

    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    done: bool = False
    pending_calls: dict[int, dict[str, str]] = field(default_factory=dict)  # by index: id, name, arguments
    # The request offered the API client's tools: a `tool_calls` finish is theirs to run. Without them
    # every call is an MCP server's, run by the API, whatever finish reason its step ends with.
    client_tools: bool = False
    served_models: list[str] = field(default_factory=list)  # the models its chunks named, as they changed
    handoff_offsets: list[int] = field(default_factory=list)  # where each model after the first began
    chars: int = 0  # code points of reply text parsed so far
    refused: bool = False  # some of its text came as `delta.refusal`
    # Reasoning parsed and not handed on yet (text and reasoning never both wait: order is kept).
    thoughts: list[str] = field(default_factory=list)
    reasoning_room: int = field(default_factory=lambda: settings.CHAT_MAX_REASONING_CHARS)
    think: ThinkSplit | None = field(default_factory=ThinkSplit)  # None once the text has no prefix left


class Completion(NamedTuple):
    """A non-streamed completion's text and the usage the API reported for it (None: none reported)."""

    text: str
    usage: dict[str, int] | None


async def completion_text(
    client: UpstreamClient, *, model: str, messages: list[dict[str, str]], time_limit: float
) -> Completion:
    """The text and usage of one short, non-streamed completion, on the instance's connection pool (a
    client of its own per call would cost a TLS context and a pool each time), tried once within
    `time_limit` seconds (a title is not worth a retry). Raise NotConfigured without a key, UpstreamError
    when the API fails, answers nonsense or is too slow."""
    if not settings.DEDALUS_API_KEY:
        raise NotConfigured()
    body = {"model": model, "messages": messages}  # not streamed: as the SDK sends it
    with request_errors():
        async with (
            asyncio.timeout(time_limit),
            client.session.post(client.completions_url, json=body, headers=client.headers) as response,
        ):
            if response.status >= 400:
                raise await status_error(response)
            answer: Any = orjson.loads(await response.read())
    choices = answer.get("choices") if isinstance(answer, dict) else None
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = first.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    text = text_storable(content) if isinstance(content, str) else ""
    return Completion(text, _usage(answer.get("usage")) if isinstance(answer, dict) else None)


async def reply_stream(
    client: UpstreamClient,
    *,
    models: Sequence[str],
    messages: Sequence[dict[str, str]],
    mcp_servers: Sequence[str],
    instructions: str = "",
    request_settings: dict[str, Any] | None = None,
    model_settings: Mapping[str, dict[str, Any]] | None = None,
    served_models: list[str] | None = None,
    handoff_offsets: list[int] | None = None,
    mcp_credentials: Mapping[str, Mapping[str, str]] | None = None,
) -> AsyncIterator[Event]:
    """Stream one reply from Dedalus as events, ending with exactly one `Finish`.

    `models` is the model that answers, then those it may hand off to (sent as a list when there are
    several); `instructions` go first as the system message, `request_settings` (temperature, max_tokens,
    ...) as the request's own fields, and `model_settings` (by model id) inside that model's entry
    (`{"model", "settings"}`, in a list). The models that produced the reply, as its chunks name them, are
    appended to `served_models` as they change (the caller keeps them however the reply ends), and the
    code-point offset in the reply's text where each model after the first began to `handoff_offsets`.
    `mcp_credentials` (a server's values by target) go encrypted inside its server spec; a request
    with credentials that is refused with 400, 401, 403 or 422 is sent once more if the authorisation
    server's key changed meanwhile.

    Before the first token, a retryable failure (connect error, 429, 5xx, a stream broken before any
    event) is retried up to CHAT_UPSTREAM_MAX_RETRIES times with exponential backoff and jitter,
    honouring Retry-After; after it, nothing is retried (the user has seen the text).
    Raise NotConfigured without an API key, UpstreamError("upstream_timeout") when the
    first token or the next one is late, and UpstreamError("upstream_error") for any other failure.
    """
    if not settings.DEDALUS_API_KEY:
        raise NotConfigured()
    loop = asyncio.get_running_loop()
    total_deadline = loop.time() + settings.CHAT_UPSTREAM_TOTAL_TIMEOUT
    system = [{"role": "system", "content": instructions}] if instructions else []
    body = {
        **settings_wire(request_settings or {}),
        "model": models_wire(models, model_settings or {}),
        "messages": [*system, *messages],
        "mcp_servers": mcp_servers_wire(mcp_servers, {}),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    served = served_models if served_models is not None else []
    handoffs = handoff_offsets if handoff_offsets is not None else []
    # One key for every attempt: the API may tell a retry from a second request.
    headers = {**client.headers, "Idempotency-Key": f"chat-{uuid.uuid4().hex}"}
    attempt = 0
    refused_key: str | None = None  # the credentials key a refused request used
    while True:
        started = False
        key_used = None
        try:
            if mcp_credentials:
                public_key, key_used = await client.mcp_keys.key(not_fingerprint=refused_key)
                body["mcp_servers"] = mcp_servers_wire(mcp_servers, mcp_credentials, public_key)
            async for event in _reply_attempt(
                client,
                body=body,
                headers=headers,
                total_deadline=total_deadline,
                served=served,
                handoffs=handoffs,
            ):
                started = True
                yield event
            return
        except UpstreamError as exc:
            if key_used and not started and refused_key is None and exc.status in KEY_REFUSED_STATUSES:
                refused_key = key_used  # once: fetch the key again and resend if it changed
                try:
                    _, fresh = await client.mcp_keys.key(not_fingerprint=refused_key)
                except UpstreamError:
                    raise exc from None
                if fresh != refused_key:
                    logger.info("resending with the authorisation server's new key")
                    continue
            if started or not exc.retryable or attempt >= settings.CHAT_UPSTREAM_MAX_RETRIES:
                raise
            attempt += 1
            delay = retry_delay(attempt, exc.retry_after)
            if loop.time() + delay >= total_deadline:
                raise
            logger.info(
                "retrying upstream", extra={"attempt": attempt, "delay": delay, "reason": exc.message}
            )
            await asyncio.sleep(delay)


def models_wire(models: Sequence[str], model_settings: Mapping[str, dict[str, Any]]) -> Any:
    """The request's `model`: one id, or a list (the first answers) whose entries are an id, or
    `{"model", "settings"}` for a model with settings of its own."""
    if len(models) == 1 and not model_settings.get(models[0]):
        return models[0]
    return [
        {"model": name, "settings": settings_wire(model_settings[name])} if model_settings.get(name) else name
        for name in models
    ]


def settings_wire(reply_settings: Mapping[str, Any]) -> dict[str, Any]:
    """Reply settings as the API takes them: a `thinking_budget` becomes the extended thinking object
    (`{"type": "enabled", "budget_tokens"}`), the others go as they are."""
    if "thinking_budget" not in reply_settings:
        return dict(reply_settings)
    wire = {key: value for key, value in reply_settings.items() if key != "thinking_budget"}
    wire["thinking"] = {"type": "enabled", "budget_tokens": reply_settings["thinking_budget"]}
    return wire


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds before retry number `attempt`: exponential with jitter, or the server's Retry-After."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_DELAY)
    base = settings.CHAT_UPSTREAM_RETRY_BACKOFF * 2 ** (attempt - 1)
    return min(base * (0.5 + random.random() / 2), MAX_RETRY_DELAY)


async def _reply_attempt(
    client: UpstreamClient,
    *,
    body: dict[str, Any],
    headers: dict[str, str],
    total_deadline: float,
    served: list[str],
    handoffs: list[int],
) -> AsyncIterator[Event]:
    """One request upstream, streamed as events; failures come out as UpstreamError."""
    loop = asyncio.get_running_loop()
    deadline = min(loop.time() + settings.CHAT_UPSTREAM_FIRST_TOKEN_TIMEOUT, total_deadline)
    first_token_seen = False
    state = _StreamState(served_models=served, handoff_offsets=handoffs, client_tools=bool(body.get("tools")))
    async with contextlib.AsyncExitStack() as stack:
        try:
            async with asyncio.timeout_at(deadline):
                response = await stack.enter_async_context(
                    client.session.post(client.completions_url, json=body, headers=headers)
                )
                if response.status >= 400:
                    raise await status_error(response)
            content = response.content
            buffer = b""
            while not state.done:
                async with asyncio.timeout_at(deadline):
                    raw = await content.readany()  # everything buffered since the last read
                if not raw:
                    break
                read_at = loop.time()
                lines = (buffer + raw).split(b"\n")
                buffer = lines.pop()
                events = _events_from_lines(lines, state)
                for event in events:
                    if type(event) is TextDelta:
                        event.received_at = read_at
                if first_token_seen or events:
                    first_token_seen = True
                    deadline = min(loop.time() + settings.CHAT_UPSTREAM_IDLE_TIMEOUT, total_deadline)
                for event in events:
                    yield event
        except TimeoutError as exc:  # our deadlines, and aiohttp's connect timeout
            raise timeout_error(first_token_seen, loop.time() >= total_deadline) from exc
        except aiohttp.ClientError as exc:
            raise stream_broken(exc) from exc
    if not state.done and state.finish_reason is None:
        raise UpstreamError("The model service ended the reply early.", retryable=True)
    yield Finish(reason="refusal" if state.refused else state.finish_reason or "stop", usage=state.usage)


def _events_from_lines(lines: list[bytes], state: _StreamState) -> list[Event]:
    """Parse complete SSE lines into events, joining adjacent text into one `TextDelta`."""
    events: list[Event] = []
    texts: list[str] = []
    for line in lines:
        if not line.startswith(b"data:"):
            continue  # blank separators, comments (keep-alives), event names
        payload = line[5:].strip()
        if payload == b"[DONE]":
            state.done = True
            break
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError("The model service sent a malformed event.") from exc
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk and chunk["error"]:
            raise stream_error(chunk["error"])
        model = chunk.get("model")
        event = chunk.get("x_dedalus_event") or chunk.get("dedalus_event")
        if isinstance(event, dict) and event.get("type") == "agent_updated" and event.get("model"):
            model = event["model"]  # a handoff: the next text is the new model's, whatever chunks say
        served = state.served_models
        if model and isinstance(model, str) and (not served or served[-1] != model):
            if served:
                state.handoff_offsets.append(state.chars)
            served.append(text_storable(model[:200]))
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if not _reasoning_absent(delta):
                _thought_add(state, events, texts, reasoning_of(delta))
            text = delta.get("content")
            refusal = delta.get("refusal")
            if refusal and isinstance(refusal, str):
                # The model declined: its words are the reply's text (offsets count them like any
                # other), and the reply ends as a refusal.
                state.refused = True
                text = f"{text}{refusal}" if isinstance(text, str) else refusal
            if text and state.think is not None and isinstance(text, str):
                thought, text, over = state.think.feed(text)
                _thought_add(state, events, texts, thought)
                if over:
                    state.think = None
            if text:
                _text_add(state, events, texts, text)
            if delta.get("tool_calls"):
                _accumulate_tool_calls(state, delta["tool_calls"])
            if choice.get("finish_reason"):
                state.finish_reason = choice["finish_reason"]
        results = chunk.get("mcp_tool_results")
        if results:
            events.extend(_flush_tool_calls(state, texts))
            _flush_text(events, texts, state)
            events.extend(_tool_results(results))
        if chunk.get("usage"):
            state.usage = _usage(chunk["usage"])
    if state.done or state.finish_reason:
        if state.think is not None:  # the reply ended while its start was held back
            thought, text = state.think.end()
            state.think = None
            _thought_add(state, events, texts, thought)
            if text:
                _text_add(state, events, texts, text)
        events.extend(_flush_tool_calls(state, texts))
    _flush_text(events, texts, state)
    return events


def _text_add(state: _StreamState, events: list[Event], texts: list[str], text: str) -> None:
    if state.pending_calls:
        events.extend(_flush_tool_calls(state, texts))
    if state.thoughts:
        _flush_text(events, texts, state)
    texts.append(text)
    state.chars += len(text) - text.count("\x00")  # as stored: text_storable drops U+0000


def _thought_add(state: _StreamState, events: list[Event], texts: list[str], thought: str) -> None:
    """Keep a piece of reasoning, within CHAT_MAX_REASONING_CHARS a reply (the rest is dropped)."""
    if not thought or state.reasoning_room <= 0:
        return
    if texts:
        _flush_text(events, texts)
    thought = thought[: state.reasoning_room]
    state.reasoning_room -= len(thought)
    state.thoughts.append(thought)


def _flush_text(events: list[Event], texts: list[str], state: _StreamState | None = None) -> None:
    """Hand on the text waiting in `texts`, or the reasoning waiting in `state` (only one waits)."""
    if state is not None and state.thoughts:
        thought = text_storable("".join(state.thoughts))
        state.thoughts.clear()
        if thought:
            events.append(ReasoningDelta(thought))
    if texts:
        text = text_storable("".join(texts))  # the model's text is input too: stored as it is shown
        texts.clear()
        if text:
            events.append(TextDelta(text))


def _accumulate_tool_calls(state: _StreamState, calls: Any) -> None:
    """Tool calls stream in pieces keyed by index (the first piece of each with its id and name); gather
    them until they are whole, within TOOL_CALLS_MAX calls of TOOL_CALL_MAX_CHARS each."""
    if not isinstance(calls, list):
        raise UpstreamError("The model service sent a malformed tool call.")
    for call in calls:
        index = call.get("index", 0) if isinstance(call, dict) else None
        if not isinstance(index, int) or isinstance(index, bool):
            raise UpstreamError("The model service sent a malformed tool call.")
        if index not in state.pending_calls and len(state.pending_calls) >= TOOL_CALLS_MAX:
            raise UpstreamError(f"The model called more than {TOOL_CALLS_MAX} tools at once.")
        entry = state.pending_calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        for key, piece in (("id", call.get("id")), ("name", function.get("name"))):
            if isinstance(piece, str) and not entry[key]:
                entry[key] = piece  # sent whole with the first piece (some gateways repeat it)
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            entry["arguments"] += arguments
        if len(entry["arguments"]) > TOOL_CALL_MAX_CHARS:
            raise UpstreamError(f"The model's tool call is longer than {TOOL_CALL_MAX_CHARS} characters.")


def _flush_tool_calls(state: _StreamState, texts: list[str]) -> list[Event]:
    """Return the gathered tool calls as events (after any text before them) and forget them: the API
    client's when the reply ends for them (finish reason `tool_calls`), else the MCP servers' calls."""
    if not state.pending_calls:
        return []
    events: list[Event] = []
    _flush_text(events, texts, state)
    if state.client_tools and state.finish_reason == "tool_calls":
        events.append(ToolCalls([_client_call(call) for _, call in sorted(state.pending_calls.items())]))
        state.pending_calls.clear()
        return events
    for _, call in sorted(state.pending_calls.items()):
        try:
            arguments = orjson.loads(call["arguments"]) if call["arguments"] else {}
        except orjson.JSONDecodeError:
            arguments = call["arguments"]
        events.append(
            ToolActivity(
                phase="call",
                name=text_storable(call["name"]),
                arguments=tool_value_bounded(json_storable(arguments)),
            )
        )
    state.pending_calls.clear()
    return events


def _client_call(call: dict[str, str]) -> dict[str, Any]:
    return {
        "id": text_storable(call["id"][:200]) or f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": text_storable(call["name"][:64]), "arguments": text_storable(call["arguments"])},
    }


def _tool_results(results: list[Any]) -> list[Event]:
    events: list[Event] = []
    for item in results:
        if isinstance(item, dict):
            events.append(
                ToolActivity(
                    phase="result",
                    name=text_storable(str(item.get("tool_name") or "")),
                    arguments=tool_value_bounded(json_storable(item.get("arguments"))),
                    result=tool_value_bounded(json_storable(item.get("result"))),
                    server=json_storable(item.get("server_name")),
                    is_error=bool(item.get("is_error")),
                    duration_ms=_duration(item.get("duration_ms")),
                )
            )
    return events


def _duration(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        else None
    )


def tool_value_bounded(value: Any) -> Any:
    """A tool's arguments or result as stored and shown: whole, or (past CHAT_MAX_TOOL_RESULT_CHARS of
    JSON) cut there with a note, so one tool frame never outgrows a WebSocket message."""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    limit = settings.CHAT_MAX_TOOL_RESULT_CHARS
    if len(text) <= limit:
        return value
    return {"truncated": True, "length": len(text), "text": text[:limit]}


def _usage(raw: Any) -> dict[str, int] | None:
    """The token counts of a usage object, with the reasoning and cached tokens when it reports them."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(raw.get("total_tokens") or prompt + completion),
    }
    for name, details in (
        ("reasoning_tokens", "completion_tokens_details"),
        ("cached_tokens", "prompt_tokens_details"),
    ):
        section = raw.get(details)
        value = section.get(name) if isinstance(section, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            usage[name] = value
    return usage
