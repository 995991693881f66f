"""Local stand-in for the Dedalus chat-completions API, so tests and benchmarks stream over real HTTP.

Run it with ``python -m standin --host 127.0.0.1 --port 4010 [--tokens 40] [--delay-ms 20]``
and point the SDK at it with ``DEDALUS_BASE_URL=http://127.0.0.1:4010``.

Per-request behaviour comes from, first match wins:

1. the script queue (``POST /_standin/script`` with a JSON list of behaviour objects; one is popped per
   completion request; ``DELETE /_standin/script`` empties it);
2. a directive in the last user message, ``[[standin key=value key=value]]`` (removed before answering;
   values are URL-unquoted, so ``reply=hello%20world`` works);
3. the server defaults (``tokens``, ``delay_ms``).

By default a reply is a Markdown answer chosen by the question's words (standin_answers.py): its natural
length, or exactly ``tokens`` tokens when a number is given (cut, or lengthened by more sections);
``echo=1`` gives the old reply instead (the message echoed, then filler words up to ``tokens``).

A title request (not streamed, its system message asking for a title) is answered with a short title
made of the conversation's words. It takes no directive; its own queue (``POST /_standin/script?for=title``)
scripts it (e.g. ``{"status": 500}``), and its log record's ``kind`` is ``"title"`` (``"reply"`` otherwise).

Behaviour keys: ``tokens``, ``delay_ms``, ``first_delay_ms``, ``status`` (with ``retry_after``, the error's
``Retry-After`` header; a 429's is ``0`` unless given), ``drop_after``, ``stall_after``,
``handoff_after`` (with a list of models: from that token on, the second model writes, after an
``agent_updated`` event), ``refusal`` (the reply streams as ``delta.refusal``), ``reasoning_tokens`` and
``cached_tokens`` (the usage's details), ``stall_before_headers``, ``tool``, ``reply``, ``stamp``, ``echo``,
``reasoning`` (the model thinks first: its reasoning streams before the reply, in one of the gateways'
shapes, ``reasoning_content``, ``reasoning``, ``reasoning_details`` or ``think`` (a ``<think>…</think>``
prefix of the text); the usage then counts its tokens as ``reasoning_tokens`` unless given),
``reasoning_ms`` (how long that takes, spread over its tokens; default 300) and ``reasoning_text`` (its
words; default a few sentences about the question).

Client tools: a request with ``tools`` whose behaviour says ``call`` (a tool's name, several
comma-separated, or ``1`` for the first tool), or whose last user message names one of its tools, answers
with those tool calls (arguments ``{"query": <the question's words>}``, or ``call_arguments``, a JSON
text), streamed in pieces of ``CALL_PIECE_CHARS``, ending with finish reason ``tool_calls``. A request
whose last messages are tool results answers with text quoting each result (answers.tool_results_answer).
Every completion request is recorded and served by ``GET /_standin/requests`` (``DELETE`` clears it),
with the MCP credentials its server specs carried, opened (``mcp_credentials``; see standin_auth.py).

Numbered sources (``[n] ...`` lines in a system message or the last user message, sources.py) make the
answer open with a paragraph citing, as ``[n]``, those sharing a word with the question.
``POST /v1/embeddings`` answers with deterministic hashed bag-of-words vectors within the API's limits
(embeddings.py); its own queue (``POST /_standin/script?for=embeddings``) scripts an error ``status``.

Deliberately free of Django so it can run next to the server under test without loading its settings.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from .answers import answer_tokens, title_of_conversation, tool_results_answer
from .auth import AUTH_KEY, CredentialsUnreadable, auth_routes_add
from .embeddings import EmbeddingRefused, embeddings_answer, input_tokens, inputs_checked
from .parts import has_image, ocr_pages, parts_described
from .sources import Source, citing_paragraph, sources_split

MODEL_IDS = ("openai/gpt-5.1", "anthropic/claude-opus-4-5-20251101", "google/gemini-3-pro-preview")
DEFAULT_MODEL = MODEL_IDS[0]
FILLER = ("lorem ", "ipsum ", "dolor ", "sit ", "amet ")
# The length of an echoed (`echo=1`) or stamped reply when no `tokens` is given (an answer has its own).
ECHO_TOKENS = 40
MAX_RECORDS = 10_000
MAX_BODY_BYTES = 32 * 1024 * 1024
STALL_LIMIT_S = 300.0
# How often a stalled handler checks whether its client has gone; cheap enough for hundreds of stalls.
GONE_POLL_S = 0.25

DIRECTIVE_RE = re.compile(r"\[\[standin(?P<args>[^\]]*)\]\]")
# Splits a reply into word tokens with their trailing spaces attached, so the pieces rejoin exactly.
REPLY_TOKEN_RE = re.compile(r"[^ ]* +|[^ ]+")
# A client tool call's arguments stream in pieces this long, as OpenAI's do.
CALL_PIECE_CHARS = 8

ERROR_TYPES = {
    400: ("invalid_request_error", "bad_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    408: ("timeout_error", "timeout"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


REASONING_SHAPES = ("reasoning_content", "reasoning", "reasoning_details", "think")


def _reasoning_shape(value: Any) -> str:
    if value not in REASONING_SHAPES:
        raise ValueError(f"one of {', '.join(REASONING_SHAPES)}")
    return str(value)


def _flag(value: Any) -> int:
    """Return 1 if ``value`` reads as true ("1", "true", "yes", True, 1), else 0."""
    if isinstance(value, str):
        return int(value.strip().lower() in ("1", "true", "yes", "on"))
    return int(bool(value))


BEHAVIOUR_KEYS: dict[str, Callable[[Any], Any]] = {
    "tokens": int,
    "delay_ms": float,
    "first_delay_ms": float,
    "status": int,
    "retry_after": str,
    "drop_after": int,
    "stall_after": int,
    "handoff_after": int,
    "refusal": _flag,
    "reasoning_tokens": int,
    "cached_tokens": int,
    "stall_before_headers": float,
    "tool": str,
    "reply": str,
    "stamp": _flag,
    "echo_auth": _flag,
    "echo": _flag,
    "reasoning": _reasoning_shape,
    "reasoning_ms": float,
    "reasoning_text": str,
    "call": str,
    "call_arguments": str,
}


class BehaviourError(ValueError):
    """A behaviour object or directive had a value of the wrong type."""


class Standin:
    """Holds the defaults, the script queue and the request log shared by all handlers."""

    def __init__(self, tokens: int | None, delay_ms: float) -> None:
        self.defaults: dict[str, Any] = {"delay_ms": float(delay_ms)}
        if tokens is not None:  # without it, a reply has its answer's natural length
            self.defaults["tokens"] = int(tokens)
        self.script: deque[dict[str, Any]] = deque()
        self.title_script: deque[dict[str, Any]] = deque()
        self.embedding_script: deque[dict[str, Any]] = deque()
        self.records: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self.ids = itertools.count(1)

    def record(
        self, request: web.Request, body: Any, behaviour: dict[str, Any], *, kind: str = "reply"
    ) -> dict[str, Any]:
        """Append and return a new in-progress log record for a completion request."""
        rec = {
            "id": next(self.ids),
            "kind": kind,
            "path": request.path,
            "headers": {
                "authorization": request.headers.get("Authorization"),
                "idempotency-key": request.headers.get("Idempotency-Key"),
            },
            "body": body,
            "behaviour": behaviour,
            "outcome": None,
            "tokens_sent": 0,
            "started_at": time.time(),
            "ended_at": None,
        }
        self.records.append(rec)
        return rec


STATE_KEY = web.AppKey("standin", Standin)


def coerce_behaviour(raw: dict[str, Any]) -> dict[str, Any]:
    """Return ``raw`` restricted to known behaviour keys with values converted to their types."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        convert = BEHAVIOUR_KEYS.get(key)
        # An empty directive value ("status=") means "not set" rather than a type error.
        if convert is None or value is None or (value == "" and convert is not str):
            continue
        try:
            out[key] = convert(value)
        except (TypeError, ValueError) as exc:
            raise BehaviourError(f"standin: bad value for {key!r}: {value!r}") from exc
    return out


def text_of(content: Any) -> str:
    """Return the plain text of a message's content (a string or a list of OpenAI content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def last_user_content(messages: list[Any]) -> Any:
    """Return the content of the last message with role "user", or "" if there is none."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message.get("content")
    return ""


def tool_results_last(messages: Any) -> list[tuple[str, str]]:
    """The tool results that end the request's messages ((call id, text) pairs, in order), or []."""
    results: list[tuple[str, str]] = []
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role") != "tool":
            break
        results.insert(0, (str(message.get("tool_call_id")), text_of(message.get("content"))))
    return results


def tool_names(body: dict[str, Any]) -> list[str]:
    """The names of the client's function tools the request offers."""
    tools = body.get("tools")
    names = []
    for tool in tools if isinstance(tools, list) else []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return names


def client_calls(body: dict[str, Any], behaviour: dict[str, Any], words: list[str]) -> list[dict[str, Any]]:
    """The client tools this reply calls (OpenAI's `{id, type, function: {name, arguments}}`): those
    ``call`` names, or those the question's words name; none without tools or after tool results."""
    offered = tool_names(body)
    if not offered or tool_results_last(body.get("messages")):
        return []
    asked = behaviour.get("call")
    if asked:
        names = [offered[0]] if asked == "1" else [name for name in asked.split(",") if name in offered]
    else:
        said = {word.strip(".,!?:;\"'()`") for word in words}
        names = [name for name in offered if name in said]
    arguments = behaviour.get("call_arguments") or json.dumps({"query": " ".join(words)})
    return [
        {
            "id": "call_" + secrets.token_hex(8),
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        for name in names
    ]


def parse_directives(text: str) -> tuple[dict[str, Any], str]:
    """Return (raw behaviour from every ``[[standin ...]]`` in ``text``, ``text`` with them removed)."""
    raw: dict[str, Any] = {}
    for match in DIRECTIVE_RE.finditer(text):
        for pair in match.group("args").split():
            key, sep, value = pair.partition("=")
            if sep:
                raw[key] = unquote(value)
    return raw, DIRECTIVE_RE.sub("", text)


def sources_given(messages: Any, user_text: str) -> tuple[list[Source], str]:
    """The numbered sources of the system messages, else of the last user message (sources.py), and the
    user's text without them."""
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and message.get("role") == "system":
            sources, _ = sources_split(text_of(message.get("content")))
            if sources:
                return sources, user_text
    return sources_split(user_text)


def is_title_request(body: dict[str, Any]) -> bool:
    """True for a request that asks for a conversation's title: not streamed, with a system message
    that speaks of a title."""
    messages = body.get("messages")
    if body.get("stream") or not isinstance(messages, list):
        return False
    return any(
        isinstance(m, dict) and m.get("role") == "system" and "title" in text_of(m.get("content")).lower()
        for m in messages
    )


def model_id(entry: Any) -> Any:
    """A `model` entry's id: the string itself, or an object's `model` (`{"model", "settings"}`)."""
    return entry.get("model") if isinstance(entry, dict) else entry


def first_model(model: Any) -> str:
    """Return the requested model id: the entry itself, or the first entry of a list."""
    if isinstance(model, list):
        model = model[0] if model else None
    model = model_id(model)
    return model if isinstance(model, str) and model else DEFAULT_MODEL


def first_server_name(servers: Any) -> str:
    """Return the slug or URL of the first MCP server in the request, or "standin"."""
    if isinstance(servers, list) and servers:
        first = servers[0]
        if isinstance(first, str):
            return first
        if isinstance(first, dict):
            return str(first.get("slug") or first.get("url") or first.get("name") or "standin")
    return "standin"


def prompt_tokens(messages: list[Any]) -> int:
    """Return the number of whitespace-separated words across all messages' content."""
    return sum(len(text_of(m.get("content")).split()) for m in messages if isinstance(m, dict))


def reply_tokens(behaviour: dict[str, Any], words: list[str], seen: list[str], citing: str = "") -> list[str]:
    """Return the reply as token strings: ``reply`` split at spaces, the echo padded with filler
    (``echo``), or the Markdown answer to ``words`` (``seen``: what the attachments were; ``citing``:
    the paragraph citing the sources given).

    Stamped replies are produced at write time instead, so this is not used for them.
    """
    if "reply" in behaviour:
        return REPLY_TOKEN_RE.findall(behaviour["reply"])
    if not behaviour.get("echo"):
        return answer_tokens(words, seen, behaviour.get("tokens"), citing)
    tokens = ["You said: "]
    tokens.extend(word + " " for word in words)
    tokens.extend(word + " " for word in (["I", "see:", *"; ".join(seen).split()] if seen else []))
    # The echo is never cut short, even when it alone exceeds the requested length.
    filler = itertools.cycle(FILLER)
    tokens.extend(next(filler) for _ in range(behaviour.get("tokens", ECHO_TOKENS) - len(tokens)))
    return tokens


def reasoning_tokens(behaviour: dict[str, Any], words: list[str]) -> list[str]:
    """The reasoning a thinking reply streams first, as word tokens (``reasoning_text``, or a few
    sentences about the question)."""
    text = behaviour.get("reasoning_text") or (
        f"The question is about {' '.join(words[:8]) or 'nothing in particular'}. "
        "First, what is really asked? Then the simplest answer that holds, and a check of it."
    )
    return REPLY_TOKEN_RE.findall(text)


def reasoning_delta(shape: str, token: str) -> dict[str, Any]:
    """A delta carrying one token of reasoning in a gateway's shape (``think``: in the text itself)."""
    if shape == "reasoning_details":
        return {"reasoning_details": [{"type": "reasoning.text", "text": token, "index": 0}]}
    return {"content" if shape == "think" else shape: token}


async def reasoning_stream(
    response: web.StreamResponse, event: Callable[[dict[str, Any]], bytes], completion: Completion
) -> None:
    """Stream the reasoning before the reply, over ``reasoning_ms``, in the shape the behaviour names."""
    shape = completion.behaviour["reasoning"]
    tokens = completion.reasoning
    if shape == "think":
        tokens = ["<think>", *tokens, "</think>\n\n"]
    pause = completion.behaviour.get("reasoning_ms", 300.0) / 1000 / max(len(tokens), 1)
    for token in tokens:
        await asyncio.sleep(pause)
        delta = reasoning_delta(shape, token)
        await response.write(event({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}))


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> bytes:
    """Return an OpenAI-style JSON error body for ``status`` (with ``param`` when one is named)."""
    err_type, default_code = ERROR_TYPES.get(status, ("server_error" if status >= 500 else "api_error", None))
    error = {"message": message, "type": err_type, "code": code or default_code}
    if param is not None:
        error["param"] = param
    return orjson.dumps({"error": error})


def error_response(
    status: int,
    message: str,
    code: str | None = None,
    *,
    retry_after: str | None = None,
    param: str | None = None,
) -> web.Response:
    """Return a JSON error response with ``retry_after`` as its Retry-After; 429s carry ``retry-after: 0``
    unless told otherwise, so SDK retries stay instant."""
    if retry_after is None and status == 429:
        retry_after = "0"
    headers = {"retry-after": retry_after} if retry_after is not None else None
    return web.Response(
        status=status,
        body=error_body(status, message, code, param),
        content_type="application/json",
        headers=headers,
    )


def finish(rec: dict[str, Any], outcome: str) -> None:
    """Mark a log record as ended with ``outcome`` unless an earlier path already decided it."""
    if rec["ended_at"] is None:
        rec["outcome"] = rec["outcome"] or outcome
        rec["ended_at"] = time.time()


def client_gone(request: web.Request) -> bool:
    """Return True if the client's connection is closed or closing."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def sleep_unless_gone(request: web.Request, seconds: float) -> bool:
    """Sleep up to ``seconds``; return False as soon as the client goes away, True otherwise."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if client_gone(request):
            return False
        await asyncio.sleep(min(GONE_POLL_S, left))
    return not client_gone(request)


def drop_connection(request: web.Request) -> None:
    """Close the TCP connection mid-response so the client sees an incomplete chunked body."""
    # close() rather than abort() so the tokens already written are flushed before the FIN.
    if request.transport is not None:
        request.transport.close()


class Completion:
    """Everything derived from one chat-completions request body that the writers need."""

    def __init__(
        self,
        body: dict[str, Any],
        behaviour: dict[str, Any],
        words: list[str],
        seen: list[str],
        citing: str = "",
    ) -> None:
        self.behaviour = behaviour
        self.model = first_model(body.get("model"))
        models = body.get("model")
        # A list of models: the first answers; `handoff_after` hands the rest of the reply to the second.
        second = model_id(models[1]) if isinstance(models, list) and len(models) > 1 else None
        self.handoff_model = second if isinstance(second, str) and second else None
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        messages = body.get("messages")
        self.prompt_tokens = prompt_tokens(messages if isinstance(messages, list) else [])
        self.words = words
        self.stamp = bool(behaviour.get("stamp"))
        self.tokens = [] if self.stamp else reply_tokens(behaviour, words, seen, citing)
        self.count = behaviour.get("tokens", ECHO_TOKENS) if self.stamp else len(self.tokens)
        self.server_name = first_server_name(body.get("mcp_servers"))
        self.stream = bool(body.get("stream"))
        self.reasoning = reasoning_tokens(behaviour, words) if behaviour.get("reasoning") else []
        self.client_calls = client_calls(body, behaviour, words)
        if self.client_calls and "reply" not in behaviour:
            self.tokens, self.count = [], 0  # a reply that only calls tools has no text

    def token(self, index: int) -> str:
        """Return the token at ``index``; stamped tokens carry the current time in microseconds."""
        if self.stamp:
            return f"{index}@{time.time_ns() // 1000} "
        return self.tokens[index]

    def tool_call(self) -> dict[str, Any]:
        """Return the OpenAI tool call for the behaviour's ``tool``."""
        return {
            "index": 0,
            "id": "call_" + secrets.token_hex(8),
            "type": "function",
            "function": {"name": self.behaviour["tool"], "arguments": json.dumps(self.tool_arguments())},
        }

    def tool_arguments(self) -> dict[str, str]:
        """Return the tool arguments: the first word of the last user message as ``query``."""
        return {"query": self.words[0] if self.words else ""}

    def mcp_tool_results(self) -> list[dict[str, Any]]:
        """Return the Dedalus ``mcp_tool_results`` list describing a server-side tool run."""
        return [
            {
                "tool_name": self.behaviour["tool"],
                "server_name": self.server_name,
                "arguments": self.tool_arguments(),
                "result": {"text": "standin result"},
                "is_error": False,
                "duration_ms": 3,
            }
        ]

    def usage(self, completion_tokens: int) -> dict[str, Any]:
        """Return the usage object for ``completion_tokens`` sent tokens (with the reasoning and cached
        token details the behaviour asks for)."""
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }
        reasoning = self.behaviour.get("reasoning_tokens", len(self.reasoning) or None)
        if reasoning is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        if "cached_tokens" in self.behaviour:
            usage["prompt_tokens_details"] = {"cached_tokens": self.behaviour["cached_tokens"]}
        return usage


# What `GET /v1/models` tells of each model: its token limits, whether it reads images and thinks, and
# its prices in USD per million tokens (input, output, cached input). The last one is listed but not in
# MODEL_IDS.
CATALOG = {
    "openai/gpt-5.1": ("GPT-5.1", 400_000, 128_000, True, True, "1.25", "10.00", "0.125"),
    "anthropic/claude-opus-4-5-20251101": (
        "Claude Opus 4.5",
        200_000,
        64_000,
        True,
        True,
        "5.00",
        "25.00",
        "0.50",
    ),
    "google/gemini-3-pro-preview": ("Gemini 3 Pro", 1_000_000, 64_000, True, True, "2.00", "12.00", "0.20"),
    "openai/gpt-5.1-mini": ("GPT-5.1 mini", 400_000, 128_000, False, False, "0.25", "2.00", "0.025"),
}


def catalog_entry(model: str) -> dict[str, Any]:
    name, input_limit, output_limit, vision, thinking, price_in, price_out, price_cached = CATALOG[model]
    return {
        "id": model,
        "object": "model",
        "owned_by": "standin",
        "provider": model.split("/", 1)[0],
        "created_at": "2025-11-01T00:00:00Z",
        "display_name": name,
        "capabilities": {
            "text": True,
            "streaming": True,
            "tools": True,
            "thinking": thinking,
            "vision": vision,
            "input_token_limit": input_limit,
            "output_token_limit": output_limit,
        },
        "pricing": {"input": price_in, "output": price_out, "cached_input": price_cached},
    }


async def handle_models(request: web.Request) -> web.Response:
    """Return the fixed model list, with capabilities, limits and prices."""
    data = [catalog_entry(model) for model in CATALOG]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")


def reject(
    state: Standin, request: web.Request, body: Any, status: int, message: str, *, code: str | None = None
) -> web.Response:
    """Log a request refused before any behaviour applied and return its JSON error response."""
    finish(state.record(request, body, {"status": status}), "error_status")
    return error_response(status, message, code)


async def body_read(request: web.Request) -> tuple[Any, web.Response | None]:
    """A request's JSON body (None when it is not JSON), and the 401 refusal of one without a key."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    if "Authorization" in request.headers:
        return body, None
    state = request.app[STATE_KEY]
    return body, reject(
        state, request, body, 401, "standin: missing Authorization header", code="missing_api_key"
    )


async def handle_completions(request: web.Request) -> web.StreamResponse:
    """Answer a chat-completions request as JSON or SSE according to the chosen behaviour."""
    state = request.app[STATE_KEY]
    # Auth is checked before the script queue is touched so a refused request doesn't eat a scripted entry.
    body, refused = await body_read(request)
    if refused is not None:
        return refused
    if not isinstance(body, dict):
        return reject(state, request, body, 400, "standin: request body must be a JSON object")
    try:
        credentials = request.app[AUTH_KEY].servers_opened(body.get("mcp_servers"))
    except CredentialsUnreadable as exc:
        return reject(state, request, body, 400, f"standin: {exc}", code="invalid_credentials")

    messages = body.get("messages")
    model = first_model(body.get("model"))
    if has_image(messages) and model in CATALOG and not CATALOG[model][3]:
        return reject(
            state, request, body, 400, f"standin: {model} does not accept images", code="invalid_request"
        )
    content = last_user_content(messages if isinstance(messages, list) else [])
    titling = is_title_request(body)
    raw_directive, user_text = parse_directives(text_of(content))
    if titling:
        raw = state.title_script.popleft() if state.title_script else {}
    else:
        raw = state.script.popleft() if state.script else raw_directive
    try:
        behaviour = {**state.defaults, **coerce_behaviour(raw)}
    except BehaviourError as exc:
        return reject(state, request, body, 400, str(exc))
    if titling and "reply" not in behaviour:
        behaviour["reply"] = title_of_conversation(text_of(content))
    results = tool_results_last(messages)
    if results and "reply" not in behaviour:
        behaviour["reply"] = tool_results_answer(results)

    sources, user_text = sources_given(messages, user_text)
    citing = citing_paragraph(sources, user_text) if sources and not titling else ""

    rec = state.record(request, body, behaviour, kind="title" if titling else "reply")
    rec["mcp_credentials"] = credentials  # what the servers' envelopes held, opened
    try:
        seen = parts_described(content)
        return await respond(request, Completion(body, behaviour, user_text.split(), seen, citing), rec)
    except (ConnectionResetError, ClientConnectionResetError):
        # Raised by a write once the client has gone (aiohttp's error subclasses ConnectionResetError).
        finish(rec, "client_disconnected")
        return web.Response()
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the client disconnects (handler_cancellation=True).
        finish(rec, "client_disconnected")
        raise


async def respond(request: web.Request, completion: Completion, rec: dict[str, Any]) -> web.StreamResponse:
    """Return the response the behaviour asks for: a stall, an error status, a stream or a JSON body."""
    behaviour = completion.behaviour
    before = behaviour.get("stall_before_headers")
    if before and not await sleep_unless_gone(request, before):
        finish(rec, "client_disconnected")
        return web.Response()
    status = behaviour.get("status")
    if status and status >= 400:
        finish(rec, "error_status")
        message = f"standin: simulated HTTP {status}"
        if behaviour.get("echo_auth"):  # as some APIs quote the key they were sent
            auth = request.headers.get("Authorization", "")
            message = f"Incorrect API key provided: {auth.removeprefix('Bearer ')}"
        return error_response(status, message, retry_after=behaviour.get("retry_after"))
    if completion.stream:
        return await stream_completion(request, completion, rec)
    return await json_completion(request, completion, rec)


async def stall(request: web.Request, rec: dict[str, Any]) -> None:
    """Send nothing until the client leaves or the stall limit passes, then close the connection."""
    rec["outcome"] = "stalled"
    await sleep_unless_gone(request, STALL_LIMIT_S)
    finish(rec, "stalled")
    drop_connection(request)


async def stream_completion(
    request: web.Request, completion: Completion, rec: dict[str, Any]
) -> web.StreamResponse:
    """Stream the reply as OpenAI ``chat.completion.chunk`` server-sent events and return the response."""
    behaviour = completion.behaviour
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)

    # Every chunk shares this JSON head; per-token events are then just three byte concatenations.
    head = orjson.dumps(
        {
            "id": completion.id,
            "object": "chat.completion.chunk",
            "created": completion.created,
            "model": completion.model,
        }
    )[:-1]

    def event(rest: dict[str, Any]) -> bytes:
        return b"data: " + head + b"," + orjson.dumps(rest)[1:] + b"\n\n"

    # A refusal streams as `delta.refusal` instead of `delta.content`.
    delta_key = b"refusal" if behaviour.get("refusal") else b"content"
    content_prefix = b"data: " + head + b',"choices":[{"index":0,"delta":{"' + delta_key + b'":'
    content_suffix = b'},"finish_reason":null}]}\n\n'

    await response.write(
        event(
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        )
    )
    if completion.reasoning:
        await reasoning_stream(response, event, completion)
    if "tool" in behaviour:
        tool_delta = {"tool_calls": [completion.tool_call()]}
        await response.write(event({"choices": [{"index": 0, "delta": tool_delta, "finish_reason": None}]}))
        await response.write(event({"choices": [], "mcp_tool_results": completion.mcp_tool_results()}))

    first_delay = behaviour.get("first_delay_ms", 0.0) / 1000
    delay = behaviour["delay_ms"] / 1000
    drop_after = behaviour.get("drop_after")
    stall_after = behaviour.get("stall_after")
    handoff_after = behaviour.get("handoff_after") if completion.handoff_model else None
    sent = 0
    loop = asyncio.get_running_loop()
    paced_from = loop.time()
    for index in range(completion.count):
        if index == drop_after:
            break
        if index == stall_after:
            await stall(request, rec)
            return response
        if index == 0:
            if first_delay > 0:
                await asyncio.sleep(first_delay)
            paced_from = loop.time()
        if delay > 0:
            # Token i leaves at paced_from + (i + 1) * delay: a schedule, not a sleep per token, so a
            # sub-millisecond delay averages out instead of rounding up to the event loop's tick.
            wait = paced_from + (index + 1) * delay - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        if index == handoff_after:
            # From here on another model writes: its chunks name it, after the event that says so.
            handoff = {
                "type": "agent_updated",
                "agent": completion.handoff_model,
                "model": completion.handoff_model,
            }
            await response.write(event({"choices": [], "x_dedalus_event": handoff}))
            head = head.replace(orjson.dumps(completion.model), orjson.dumps(completion.handoff_model))
            content_prefix = b"data: " + head + b',"choices":[{"index":0,"delta":{"' + delta_key + b'":'
        await response.write(content_prefix + orjson.dumps(completion.token(index)) + content_suffix)
        sent += 1
        rec["tokens_sent"] = sent

    if drop_after is not None and sent == drop_after:
        finish(rec, "dropped")
        drop_connection(request)
        return response
    if stall_after is not None and sent == stall_after:
        await stall(request, rec)
        return response

    for index, call in enumerate(completion.client_calls):
        await client_call_stream(response, event, index, call)
    finish_reason = "tool_calls" if completion.client_calls else "stop"
    await response.write(event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]}))
    await response.write(event({"choices": [], "usage": completion.usage(sent)}))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    finish(rec, "completed")
    return response


async def client_call_stream(
    response: web.StreamResponse, event: Callable[[dict[str, Any]], bytes], index: int, call: dict[str, Any]
) -> None:
    """Stream one client tool call as OpenAI does: its id, type and name, then its arguments in pieces."""

    def delta(piece: dict[str, Any]) -> bytes:
        return event({"choices": [{"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}]})

    function = call["function"]
    head = {**call, "index": index, "function": {"name": function["name"], "arguments": ""}}
    await response.write(delta(head))
    arguments = function["arguments"]
    for start in range(0, len(arguments), CALL_PIECE_CHARS):
        piece = arguments[start : start + CALL_PIECE_CHARS]
        await response.write(delta({"index": index, "function": {"arguments": piece}}))


async def json_completion(
    request: web.Request, completion: Completion, rec: dict[str, Any]
) -> web.StreamResponse:
    """Answer with one ``chat.completion`` object after the total delay the stream would have taken."""
    behaviour = completion.behaviour
    count = completion.count
    for limit in (behaviour.get("drop_after"), behaviour.get("stall_after")):
        if limit is not None:
            count = min(count, limit)
    seconds = (behaviour.get("first_delay_ms", 0.0) + behaviour["delay_ms"] * count) / 1000
    if seconds > 0:
        await asyncio.sleep(seconds)
    text = "".join(completion.token(index) for index in range(count))
    rec["tokens_sent"] = count
    if behaviour.get("drop_after") is not None and count == behaviour["drop_after"]:
        finish(rec, "dropped")
        drop_connection(request)
        return web.Response()
    if behaviour.get("stall_after") is not None and count == behaviour["stall_after"]:
        await stall(request, rec)
        return web.Response()

    message: dict[str, Any] = {"role": "assistant", "content": text}
    payload: dict[str, Any] = {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": completion.usage(count),
    }
    if "tool" in behaviour:
        message["tool_calls"] = [{k: v for k, v in completion.tool_call().items() if k != "index"}]
        payload["mcp_tool_results"] = completion.mcp_tool_results()
    if completion.client_calls:
        message["tool_calls"] = completion.client_calls
        message["content"] = text or None
        payload["choices"][0]["finish_reason"] = "tool_calls"
    finish(rec, "completed")
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


async def handle_ocr(request: web.Request) -> web.Response:
    """Read a base64 PDF "by OCR": a line of Markdown per page (pypdf counts them); the request is logged."""
    state = request.app[STATE_KEY]
    body, refused = await body_read(request)
    if refused is not None:
        return refused
    document = body.get("document") if isinstance(body, dict) else None
    url = document.get("document_url", "") if isinstance(document, dict) else ""
    pages = ocr_pages(str(url))
    if pages is None:
        return reject(state, request, body, 400, "standin: document_url must be a base64 PDF data URL")
    finish(state.record(request, {"document_bytes": len(url)}, {}), "ocr")
    answer = {
        "model": "standin-ocr",
        "pages": [{"index": i, "markdown": f"Page {i + 1} read by OCR."} for i in range(pages)],
    }
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


async def handle_embeddings(request: web.Request) -> web.Response:
    """Answer ``POST /v1/embeddings`` with deterministic vectors (embeddings.py), or the error its
    behaviour (``?for=embeddings`` queue: ``status``, ``retry_after``) or the API's limits call for. The
    log record's body is a summary (model, dimensions, how many inputs, their tokens), not the texts."""
    state = request.app[STATE_KEY]
    body, refused = await body_read(request)
    if refused is not None:
        return refused
    raw = state.embedding_script.popleft() if state.embedding_script else {}
    try:
        behaviour = coerce_behaviour(raw)
    except BehaviourError as exc:
        return reject(state, request, None, 400, str(exc))
    inputs = body.get("input") if isinstance(body, dict) else None
    texts = [inputs] if isinstance(inputs, str) else inputs if isinstance(inputs, list) else []
    summary = {
        "model": body.get("model") if isinstance(body, dict) else None,
        "dimensions": body.get("dimensions") if isinstance(body, dict) else None,
        "inputs": len(texts),
        "tokens": sum(input_tokens(text) for text in texts if isinstance(text, str)),
    }
    rec = state.record(request, summary, behaviour, kind="embedding")
    status = behaviour.get("status")
    if status and status >= 400:
        finish(rec, "error_status")
        message = f"standin: simulated HTTP {status}"
        return error_response(status, message, retry_after=behaviour.get("retry_after"))
    try:
        model, texts, width = inputs_checked(body)
    except EmbeddingRefused as exc:
        finish(rec, "error_status")
        return error_response(400, str(exc), exc.code or "invalid_request", param=exc.param)
    finish(rec, "completed")
    return web.Response(
        body=orjson.dumps(embeddings_answer(model, texts, width)), content_type="application/json"
    )


def script_queue(request: web.Request) -> deque[dict[str, Any]]:
    """The queue a script request is about: the title requests' (``?for=title``), the embeddings'
    (``?for=embeddings``) or the replies'."""
    state = request.app[STATE_KEY]
    queues = {"title": state.title_script, "embeddings": state.embedding_script}
    return queues.get(request.query.get("for", ""), state.script)


async def handle_script_post(request: web.Request) -> web.Response:
    """Append behaviour objects (a JSON list, or one object) to the script queue (the title requests'
    with ``?for=title``); return the queue length."""
    queue = script_queue(request)
    try:
        items = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return error_response(400, "standin: script must be JSON")
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        return error_response(400, "standin: script must be a list of behaviour objects")
    try:
        # Validate now so a typo fails the test that queued it, not a later request.
        for item in items:
            coerce_behaviour(item)
    except BehaviourError as exc:
        return error_response(400, str(exc))
    queue.extend(items)
    return web.Response(body=orjson.dumps({"queued": len(queue)}), content_type="application/json")


async def handle_script_get(request: web.Request) -> web.Response:
    """Return the behaviour objects still queued (the title requests' with ``?for=title``)."""
    return web.Response(body=orjson.dumps(list(script_queue(request))), content_type="application/json")


async def handle_script_delete(request: web.Request) -> web.Response:
    """Empty every script queue; return how many entries were discarded."""
    state = request.app[STATE_KEY]
    queues = (state.script, state.title_script, state.embedding_script)
    cleared = sum(len(queue) for queue in queues)
    for queue in queues:
        queue.clear()
    return web.Response(body=orjson.dumps({"cleared": cleared}), content_type="application/json")


async def handle_requests_get(request: web.Request) -> web.Response:
    """Return the request log, oldest first."""
    return web.Response(
        body=orjson.dumps(list(request.app[STATE_KEY].records)), content_type="application/json"
    )


async def handle_requests_delete(request: web.Request) -> web.Response:
    """Clear the request log; return how many records were discarded."""
    records = request.app[STATE_KEY].records
    cleared = len(records)
    records.clear()
    return web.Response(body=orjson.dumps({"cleared": cleared}), content_type="application/json")


def build_app(*, tokens: int | None = None, delay_ms: float = 20) -> web.Application:
    """Return the stand-in aiohttp application with the given default reply length (None: each answer's
    own) and per-token delay."""
    # A request as large as the API takes: 300,000 tokens of embeddings input is over a megabyte of JSON.
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = Standin(tokens, delay_ms)
    app.router.add_get("/v1/models", handle_models)
    app.router.add_post("/v1/chat/completions", handle_completions)
    app.router.add_post("/v1/ocr", handle_ocr)
    app.router.add_post("/v1/embeddings", handle_embeddings)
    app.router.add_post("/_standin/script", handle_script_post)
    app.router.add_get("/_standin/script", handle_script_get)
    app.router.add_delete("/_standin/script", handle_script_delete)
    app.router.add_get("/_standin/requests", handle_requests_get)
    app.router.add_delete("/_standin/requests", handle_requests_delete)
    auth_routes_add(app)
    return app


async def serve(host: str, port: int, tokens: int | None, delay_ms: float) -> None:
    """Serve until SIGINT/SIGTERM, printing the listening line once the socket is bound."""
    # handler_cancellation lets a disconnecting client interrupt a handler sleeping between tokens;
    # a short shutdown_timeout keeps stalled streams from holding up SIGTERM for aiohttp's default 60 s.
    runner = web.AppRunner(
        build_app(tokens=tokens, delay_ms=delay_ms),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=0.25,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        if ":" in bound_host:
            bound_host = f"[{bound_host}]"
        print(f"standin listening on http://{bound_host}:{bound_port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def run(host: str = "127.0.0.1", port: int = 4010, tokens: int | None = None, delay_ms: float = 20) -> None:
    """Run the stand-in server in the foreground until interrupted; returns when it has shut down."""
    asyncio.run(serve(host, port, tokens, delay_ms))


def main(argv: list[str] | None = None) -> None:
    """Parse command-line arguments and run the server."""
    parser = argparse.ArgumentParser(prog="python -m standin", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4010, help="0 picks a free port")
    parser.add_argument(
        "--tokens", type=int, default=None, help="every reply's length in tokens (default: the answer's own)"
    )
    parser.add_argument("--delay-ms", type=float, default=20.0, help="default delay before each token")
    args = parser.parse_args(argv)
    run(args.host, args.port, args.tokens, args.delay_ms)


if __name__ == "__main__":
    main(sys.argv[1:])
