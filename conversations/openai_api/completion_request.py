"""A chat completion request's body, read and checked before anything is stored: OpenAI's schema for
the fields this server takes, every other field refused by name (never forwarded silently), and the
work bounded (a count of messages and of tools, the tools' size, text only)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..chat.turns import PriorMessage
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
        "tools",
        "tool_choice",
        "parallel_tool_calls",
    }
)
MESSAGES_MAX = 500
# The client's own tools: OpenAI's count and name rules, and a budget for their JSON (their schemas).
TOOLS_MAX = 128
TOOLS_MAX_CHARS = 100_000
TOOL_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
TOOL_CALL_ID_MAX_CHARS = 200  # as Message.tool_call_id stores it
STOP_MAX = 4
STOP_MAX_CHARS = 200
RESPONSE_FORMAT_MAX_CHARS = 20_000
ROLES = {"system", "developer", "user", "assistant", "tool"}
# The fields a message of each role may carry (an assistant's `refusal` as OpenAI's clients echo it).
MESSAGE_FIELDS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
}


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    history: list[PriorMessage]  # the user, assistant and tool messages before the last turn
    content: str  # the last message, the user's ("" when the request ends with tool results)
    instructions: str  # the system and developer messages, joined
    tool_results: list[PriorMessage] = field(default_factory=list)  # the closing tool messages
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
    history, content, tool_results, instructions = _messages(data.get("messages"))
    return CompletionRequest(
        model=model,
        history=history,
        content=content,
        instructions=instructions,
        tool_results=tool_results,
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        settings=_settings(data),
        passthrough=_passthrough(data),
    )


def _messages(raw: Any) -> tuple[list[PriorMessage], str, list[PriorMessage], str]:
    """The history, the last user message's text (or "" and the closing tool results) and the
    instructions; tool results must answer the tool calls of the assistant message before them."""
    if not isinstance(raw, list) or not raw:
        raise InvalidCompletionRequest("`messages` must be a non-empty list.", param="messages")
    if len(raw) > MESSAGES_MAX:
        raise InvalidCompletionRequest(f"At most {MESSAGES_MAX} messages.", param="messages")
    turns: list[PriorMessage] = []
    system: list[str] = []
    calls_open: set[str] = set()  # the ids of the tool calls the last assistant message made
    for index, message in enumerate(raw):
        param = f"messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidCompletionRequest(
                "A message is an object with a role: system, developer, user, assistant or tool.",
                param=param,
            )
        role = message["role"]
        extra = set(message) - MESSAGE_FIELDS[role]
        if extra:
            raise UnsupportedParameter(
                f"{sorted(extra)[0][:60]!r} is not supported in a message.",
                param=f"{param}.{sorted(extra)[0]}",
            )
        content = message.get("content")
        if role == "assistant" and content is None:
            content = ""  # a reply that only called tools
        text = text_storable(_text(content, f"{param}.content"))
        if role in ("system", "developer"):
            system.append(text)
        elif role == "assistant":
            calls = _tool_calls(message.get("tool_calls"), f"{param}.tool_calls")
            calls_open = {call["id"] for call in calls}
            turns.append(PriorMessage(role, text, tool_calls=calls))
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in calls_open:
                raise InvalidCompletionRequest(
                    "A tool message answers a tool call of the assistant message before it.",
                    param=f"{param}.tool_call_id",
                )
            turns.append(PriorMessage(role, text, tool_call_id=call_id))
        else:
            calls_open = set()
            turns.append(PriorMessage(role, text))
    if not turns or turns[-1].role not in ("user", "tool"):
        raise InvalidCompletionRequest("The last message must be the user's or a tool's.", param="messages")
    instructions = "\n\n".join(part for part in system if part)
    if turns[-1].role == "user":
        return turns[:-1], turns[-1].content, [], instructions
    first_result = len(turns)
    while turns[first_result - 1].role == "tool":
        first_result -= 1
    return turns[:first_result], "", turns[first_result:], instructions


def _tool_calls(raw: Any, param: str) -> list[dict[str, Any]]:
    """An assistant message's tool calls, in OpenAI's shape (function calls only)."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > TOOLS_MAX:
        raise InvalidCompletionRequest(f"`tool_calls` is a list of at most {TOOLS_MAX} calls.", param=param)
    calls = []
    for index, call in enumerate(raw):
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(function, dict)
            or call.get("type", "function") != "function"
            or not isinstance(call.get("id"), str)
            or not 0 < len(call["id"]) <= TOOL_CALL_ID_MAX_CHARS
            or not isinstance(function.get("name"), str)
            or not TOOL_NAME_RE.fullmatch(function["name"])
            or not isinstance(function.get("arguments"), str)
        ):
            raise InvalidCompletionRequest(
                "A tool call is {id, type: function, function: {name, arguments}}.", param=f"{param}[{index}]"
            )
        calls.append(
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": text_storable(function["arguments"])},
            }
        )
    return calls


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
    sent.update(_tools(data))
    user = data.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > 256):
        raise InvalidCompletionRequest("`user` is a string of at most 256 characters.", param="user")
    return sent


def _tools(data: dict[str, Any]) -> dict[str, Any]:
    """The client's tools, `tool_choice` and `parallel_tool_calls`, checked and bounded: passed upstream
    as they are."""
    sent: dict[str, Any] = {}
    tools = data.get("tools")
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list) or len(tools) > TOOLS_MAX:
            raise InvalidCompletionRequest(f"`tools` is a list of at most {TOOLS_MAX} tools.", param="tools")
        if _json_chars(tools) > TOOLS_MAX_CHARS:
            raise InvalidCompletionRequest(
                f"`tools` may take at most {TOOLS_MAX_CHARS} characters of JSON.", param="tools"
            )
        for index, tool in enumerate(tools):
            names.add(_tool_name(tool, f"tools[{index}]"))
        if len(names) < len(tools):
            raise InvalidCompletionRequest("Each tool needs a name of its own.", param="tools")
        if tools:
            sent["tools"] = tools
    choice = data.get("tool_choice")
    if choice is not None:
        named = choice.get("function") if isinstance(choice, dict) else None
        if not names:
            raise InvalidCompletionRequest("`tool_choice` needs `tools`.", param="tool_choice")
        if choice not in ("none", "auto", "required") and not (
            isinstance(choice, dict)
            and choice.get("type") == "function"
            and isinstance(named, dict)
            and named.get("name") in names
        ):
            raise InvalidCompletionRequest(
                "`tool_choice` is none, auto, required or {type: function, function: {name}} of a tool.",
                param="tool_choice",
            )
        sent["tool_choice"] = choice
    parallel = data.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise InvalidCompletionRequest(
                "`parallel_tool_calls` is true or false.", param="parallel_tool_calls"
            )
        if names:
            sent["parallel_tool_calls"] = parallel
    return sent


def _tool_name(tool: Any, param: str) -> str:
    """A function tool's name, checked with the tool's shape."""
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function":
        raise InvalidCompletionRequest("A tool is {type: function, function: {name, ...}}.", param=param)
    name = function.get("name")
    if not isinstance(name, str) or not TOOL_NAME_RE.fullmatch(name):
        raise InvalidCompletionRequest(
            "A tool's name is 1 to 64 letters, digits, underscores or dashes.", param=f"{param}.function.name"
        )
    for key, kind in (("description", str), ("parameters", dict), ("strict", bool)):
        if function.get(key) is not None and not isinstance(function[key], kind):
            raise InvalidCompletionRequest(
                f"A tool's `{key}` has the wrong type.", param=f"{param}.function.{key}"
            )
    return name


def _json_chars(value: Any) -> int:
    """The length of `value` as JSON (a nesting too deep to write counts as too long)."""
    try:
        return len(json.dumps(value))
    except RecursionError:
        return TOOLS_MAX_CHARS + 1
