"""A chat completion request's body, read and checked before anything is stored: OpenAI's schema for
the fields this server takes, every other field refused by name (never forwarded silently), and the
work bounded (a count of messages, text only)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import InvalidCompletionRequest, UnsupportedParameter
from ..text import text_storable

# The fields a request may carry; the others are refused.
ACCEPTED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "response_format",
        "reasoning_effort",
        "user",
        "n",
    }
)
# Accepted by OpenAI, not here yet: named in their refusal.
LATER = {
    "tools": "Client tools are not supported yet; agents' MCP servers run on the server.",
    "tool_choice": "Client tools are not supported yet.",
    "parallel_tool_calls": "Client tools are not supported yet.",
}
MESSAGES_MAX = 500
STOP_MAX = 4
STOP_MAX_CHARS = 200
RESPONSE_FORMAT_MAX_CHARS = 20_000
ROLES = {"system", "developer", "user", "assistant"}


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    history: list[tuple[str, str]]  # the user and assistant turns before the last message
    content: str  # the last message, the user's
    instructions: str  # the system and developer messages, joined
    stream: bool = False
    include_usage: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # the page's reply settings
    passthrough: dict[str, Any] = field(default_factory=dict)  # sent upstream as they are


def completion_request_parse(body: bytes) -> CompletionRequest:
    """The request `body` names; raise InvalidCompletionRequest (with `param`) or UnsupportedParameter."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidCompletionRequest("The body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise InvalidCompletionRequest("The body must be a JSON object.")
    for name in data:
        if name in LATER:
            raise UnsupportedParameter(LATER[name], param=name)
        if name not in ACCEPTED:
            raise UnsupportedParameter(f"{str(name)[:60]!r} is not a supported parameter.", param=name[:60])
    model = data.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise InvalidCompletionRequest("`model` must be an agent's slug or a model's id.", param="model")
    if data.get("n", 1) != 1:
        raise InvalidCompletionRequest("Only n=1 is supported.", param="n")
    stream = data.get("stream") or False
    if not isinstance(stream, bool):
        raise InvalidCompletionRequest("`stream` must be true or false.", param="stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise InvalidCompletionRequest("`stream_options` may hold include_usage.", param="stream_options")
    history, content, instructions = _messages(data.get("messages"))
    return CompletionRequest(
        model=model,
        history=history,
        content=content,
        instructions=instructions,
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        settings=_settings(data),
        passthrough=_passthrough(data),
    )


def _messages(raw: Any) -> tuple[list[tuple[str, str]], str, str]:
    if not isinstance(raw, list) or not raw:
        raise InvalidCompletionRequest("`messages` must be a non-empty list.", param="messages")
    if len(raw) > MESSAGES_MAX:
        raise InvalidCompletionRequest(f"At most {MESSAGES_MAX} messages.", param="messages")
    turns: list[tuple[str, str]] = []
    system: list[str] = []
    for index, message in enumerate(raw):
        param = f"messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidCompletionRequest(
                "A message is an object with a role: system, developer, user or assistant.", param=param
            )
        extra = set(message) - {"role", "content", "name"}
        if extra:
            raise UnsupportedParameter(
                f"{sorted(extra)[0][:60]!r} is not supported in a message.",
                param=f"{param}.{sorted(extra)[0]}",
            )
        text = text_storable(_text(message.get("content"), f"{param}.content"))
        if message["role"] in ("system", "developer"):
            system.append(text)
        else:
            turns.append((message["role"], text))
    if not turns or turns[-1][0] != "user":
        raise InvalidCompletionRequest("The last message must be the user's.", param="messages")
    return turns[:-1], turns[-1][1], "\n\n".join(part for part in system if part)


def _text(content: Any, param: str) -> str:
    """A message's text: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise UnsupportedParameter("Only text content parts are supported.", param=param)
            texts.append(part["text"])
        return "".join(texts)
    raise InvalidCompletionRequest("A message's content is a string or a list of text parts.", param=param)


def _settings(data: dict[str, Any]) -> dict[str, Any]:
    """The page's reply settings (checked against the model and the agent's locks by the turn)."""
    chosen: dict[str, Any] = {}
    if "max_tokens" in data and "max_completion_tokens" in data:
        raise InvalidCompletionRequest(
            "Send max_tokens or max_completion_tokens, not both.", param="max_completion_tokens"
        )
    for name, setting in (
        ("temperature", "temperature"),
        ("max_tokens", "max_tokens"),
        ("max_completion_tokens", "max_tokens"),
        ("reasoning_effort", "reasoning_effort"),
    ):
        if data.get(name) is not None:
            chosen[setting] = data[name]
    return chosen


def _passthrough(data: dict[str, Any]) -> dict[str, Any]:
    sent: dict[str, Any] = {}
    top_p = data.get("top_p")
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, int | float) or not 0 <= top_p <= 1:
            raise InvalidCompletionRequest("`top_p` is a number from 0 to 1.", param="top_p")
        sent["top_p"] = top_p
    seed = data.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or abs(seed) >= 2**63:
            raise InvalidCompletionRequest("`seed` is a whole number.", param="seed")
        sent["seed"] = seed
    stop = data.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if (
            not isinstance(stops, list)
            or len(stops) > STOP_MAX
            or not all(isinstance(s, str) and 0 < len(s) <= STOP_MAX_CHARS for s in stops)
        ):
            raise InvalidCompletionRequest(f"`stop` is a string or up to {STOP_MAX} strings.", param="stop")
        sent["stop"] = stops
    response_format = data.get("response_format")
    if response_format is not None:
        if (
            not isinstance(response_format, dict)
            or response_format.get("type") not in ("text", "json_object", "json_schema")
            or len(json.dumps(response_format)) > RESPONSE_FORMAT_MAX_CHARS
        ):
            raise InvalidCompletionRequest(
                "`response_format` is an object of type text, json_object or json_schema.",
                param="response_format",
            )
        sent["response_format"] = response_format
    user = data.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > 256):
        raise InvalidCompletionRequest("`user` is a string of at most 256 characters.", param="user")
    return sent
