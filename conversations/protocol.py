"""The WebSocket frame schema: parse and validate client frames, build server frames (all JSON text)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings

from .exceptions import (
    ChatError,
    EmptyMessage,
    InvalidAttachment,
    InvalidJson,
    InvalidMcpServer,
    InvalidMessage,
    InvalidSettings,
    MessageTooLong,
    UnknownAgent,
    UnknownModel,
)
from .text import text_storable


@dataclass(frozen=True, slots=True)
class TurnOptions:
    """What a frame that starts a reply may choose for it; what the client left out (None, "") keeps the
    conversation's."""

    model: str | None = None
    mcp_servers: list[str] | None = None
    client_id: str = ""  # the client's id of the frame: a resend of it stores nothing
    agent: str | None = None  # an agent's slug
    settings: dict[str, Any] | None = None  # the user's reply settings
    # Ids of the sender's uploads: a send's (None: none), an edit's (None keeps those of the message
    # edited); a regenerate carries none.
    attachments: list[str] | None = None


@dataclass(frozen=True, slots=True)
class SendFrame:
    """A user message."""

    message: str
    options: TurnOptions = TurnOptions()


@dataclass(frozen=True, slots=True)
class RegenerateFrame:
    """A new version of reply `message_id`, streamed as a sibling of it."""

    message_id: int
    options: TurnOptions = TurnOptions()


@dataclass(frozen=True, slots=True)
class EditFrame:
    """A new version of user message `message_id` with text `message`, and its reply."""

    message_id: int
    message: str
    options: TurnOptions = TurnOptions()


@dataclass(frozen=True, slots=True)
class StopFrame:
    """Cancel the reply in flight."""


@dataclass(frozen=True, slots=True)
class ResyncFrame:
    """Resend a reply's text (or, `part="reasoning"`, its reasoning) from `offset`: the client saw a gap."""

    message_id: int
    offset: int
    part: str = "text"


@dataclass(frozen=True, slots=True)
class HistoryFrame:
    """Ask for the `history` frame again (`before` None), or for the page of messages before `before`."""

    before: int | None = None


@dataclass(frozen=True, slots=True)
class SwitchFrame:
    """Make the branch through `message_id` (down to its newest leaf) the active one."""

    message_id: int


@dataclass(frozen=True, slots=True)
class FeedbackFrame:
    """The owner's thumbs on reply `message_id`: 1 up, -1 down, 0 takes it back; an optional comment."""

    message_id: int
    value: int
    comment: str = ""


ClientFrame = (
    SendFrame
    | StopFrame
    | ResyncFrame
    | HistoryFrame
    | RegenerateFrame
    | EditFrame
    | SwitchFrame
    | FeedbackFrame
)

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def parse_client_frame(text_data: str | None, bytes_data: bytes | None = None) -> ClientFrame:
    """Return the client frame in `text_data`.

    Raise InvalidJson for anything that is not a JSON object in a text frame, MessageTooLong for a
    frame over CHAT_MAX_FRAME_BYTES, and InvalidMessage (UnknownModel, InvalidMcpServer for those
    fields) for an object that is not a valid frame.
    """
    if text_data is None:
        raise InvalidJson("Frames must be JSON text, not binary.")
    limit = settings.CHAT_MAX_FRAME_BYTES
    if len(text_data) > limit or len(text_data.encode("utf-8", "surrogatepass")) > limit:
        raise MessageTooLong(f"Frames must be at most {limit} bytes.")  # refused unparsed
    try:
        data = orjson.loads(text_data)
    except orjson.JSONDecodeError:
        raise InvalidJson() from None
    if not isinstance(data, dict):
        raise InvalidJson()
    kind = data.get("type", "message")
    if kind == "stop":
        return StopFrame()
    if kind == "resync":
        return _resync_frame(data)
    if kind == "history":
        before = data.get("before")
        return HistoryFrame(before=None if before is None else _message_id(before, "before"))
    if kind == "switch":
        return SwitchFrame(message_id=_message_id(data.get("message_id")))
    if kind == "feedback":
        return _feedback_frame(data)
    if kind == "regenerate":
        return RegenerateFrame(message_id=_message_id(data.get("message_id")), options=_turn_options(data))
    if kind == "edit":
        return EditFrame(
            message_id=_message_id(data.get("message_id")),
            message=_message_text(data.get("message")),
            options=_turn_options(data, attachments=_optional_attachments(data.get("attachments"))),
        )
    if kind != "message":
        raise InvalidMessage(f"Unknown frame type {str(kind)[:40]!r}.")
    attachments = _optional_attachments(data.get("attachments"))
    return SendFrame(
        message=_message_text(data.get("message"), attached=bool(attachments)),
        options=_turn_options(data, attachments=attachments),
    )


def _turn_options(data: dict[str, Any], *, attachments: list[str] | None = None) -> TurnOptions:
    """The optional `agent`, `model`, `mcp_servers`, `client_id` and `settings` every frame that starts a
    reply may carry, with the `attachments` the frame's kind allows, checked already."""
    return TurnOptions(
        agent=_optional_name(data.get("agent"), UnknownAgent, "`agent` (an agent's slug)"),
        model=_optional_name(data.get("model"), UnknownModel, "`model` (a model's name)"),
        mcp_servers=mcp_servers_parse(data.get("mcp_servers")),
        client_id=_optional_client_id(data.get("client_id")),
        settings=_optional_settings(data.get("settings")),
        attachments=attachments,
    )


ATTACHMENT_ID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)


def _optional_attachments(value: Any) -> list[str] | None:
    # Their owner and state are the turn's check; here, the shape and the count.
    if value is None:
        return None
    limit = settings.CHAT_ATTACHMENTS_PER_MESSAGE
    if not isinstance(value, list) or not all(
        isinstance(i, str) and ATTACHMENT_ID_RE.match(i) for i in value
    ):
        raise InvalidAttachment("`attachments` must be a list of attachment ids.")
    ids = list(dict.fromkeys(str(uuid.UUID(i)) for i in value))
    if len(ids) > limit:
        raise InvalidAttachment(f"At most {limit} attachments per message.")
    return ids


def _optional_settings(value: Any) -> dict[str, Any] | None:
    # The shape only here; names, ranges and the model's limits are the turn's check (answerers.py).
    if value is None or isinstance(value, dict):
        return value
    raise InvalidSettings("`settings` must be an object (temperature, max_tokens, reasoning_effort).")


MAX_MESSAGE_ID = 2**63 - 1  # the database's bigint


def _message_id(value: Any, name: str = "message_id") -> int:
    # type(), not isinstance(): JSON true is no message id.
    if type(value) is not int or not 1 <= value <= MAX_MESSAGE_ID:
        raise InvalidMessage(f"`{name}` must be an integer message id.")
    return value


FEEDBACK_COMMENT_MAX = 2000


def _feedback_frame(data: dict[str, Any]) -> FeedbackFrame:
    value, comment = data.get("value"), data.get("comment", "")
    if type(value) is not int or value not in (1, -1, 0):
        raise InvalidMessage("`value` must be 1 (good), -1 (bad) or 0 (no feedback).")
    if not isinstance(comment, str) or len(comment) > FEEDBACK_COMMENT_MAX:
        raise InvalidMessage(f"`comment` must be a text of at most {FEEDBACK_COMMENT_MAX} characters.")
    return FeedbackFrame(
        message_id=_message_id(data.get("message_id")), value=value, comment=text_storable(comment)
    )


def _resync_frame(data: dict[str, Any]) -> ResyncFrame:
    message_id, offset = data.get("message_id"), data.get("offset", 0)
    if type(message_id) is not int or type(offset) is not int or message_id < 1 or offset < 0:
        raise InvalidMessage("A resync frame needs an integer `message_id` and `offset` >= 0.")
    part = data.get("part", "text")
    if part not in ("text", "reasoning"):
        raise InvalidMessage('A resync\'s `part` is "text" or "reasoning".')
    return ResyncFrame(message_id=message_id, offset=offset, part=part)


def _optional_client_id(value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not CLIENT_ID_RE.match(value):
        raise InvalidMessage("`client_id` must be 1 to 64 of A-Z a-z 0-9 _ -.")
    return value


def _message_text(value: Any, *, attached: bool = False) -> str:
    # A message may be only its attachments (an image sent alone); otherwise it needs words.
    if not isinstance(value, str):
        raise InvalidMessage("A frame needs a `message` string.")
    value = text_storable(value)
    if not value.strip() and not attached:
        raise EmptyMessage()
    return value


def _optional_name(value: Any, refused: type[ChatError], what: str) -> str | None:
    """A model's or an agent's name from a frame: None when left out; `refused` when not a string."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise refused(f"{what} must be a string.")
    return text_storable(value)


def mcp_servers_parse(value: Any) -> list[str] | None:
    """Return a frame's `mcp_servers` without empty entries (None when left out): the shape only, the
    servers themselves are judged by answerers.mcp_servers_clean.

    Raise InvalidMcpServer for anything but a list of strings, or an entry with control characters.
    """
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidMcpServer("`mcp_servers` must be a list of strings.")
    if not all(item.isprintable() for item in value):  # NUL and lone surrogates are not printable
        raise InvalidMcpServer("`mcp_servers` entries must not contain control characters.")
    return [item for item in value if item != ""]


def dumps(frame: dict[str, Any]) -> str:
    """Serialise a server frame to JSON text."""
    return orjson.dumps(frame).decode()


def error_frame(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, **extra}


def error_frame_of(error: ChatError, **extra: Any) -> dict[str, Any]:
    """The `error` frame that tells a client about `error`: its code, its message and its details."""
    return error_frame(error.code, error.message, **error.details, **extra)


def start_frame(
    *,
    message_id: int,
    model: str,
    parent_id: int,
    user_message: dict[str, Any] | None,
    context_dropped: int = 0,
    agent: str = "",
    title: str = "",
) -> dict[str, Any]:
    """A reply starts: `parent_id` is the user message it answers, `user_message` the one this turn
    stored (None for a regenerate, which stores none), `agent` the slug of the agent asked (None: a
    plain model); `context_dropped`, when older messages were left out of the request to fit the
    model's context window, how many; `title`, on the turn that stored the conversation's first message,
    the conversation's title (so every tab shows it as the server wrote it)."""
    frame = {
        "type": "start",
        "message_id": message_id,
        "model": model,
        "agent": agent or None,
        "parent_id": parent_id,
        "user_message": user_message,
    }
    if context_dropped:
        frame["context_dropped"] = context_dropped
    if title:
        frame["title"] = title
    return frame


def chunk_frame_text(*, content: str, message_id: int, offset: int) -> str:
    """The hot path: one chunk frame, serialised once for every subscriber."""
    return orjson.dumps(
        {"type": "chunk", "content": content, "message_id": message_id, "offset": offset}
    ).decode()


def chunk_frames_text(*, content: str, message_id: int, offset: int) -> list[str]:
    """The chunk frames of a span of text: one, or several of at most CHAT_RESYNC_PAGE_CHARS each, so no
    frame outgrows a WebSocket message however much text arrived at once."""
    page = settings.CHAT_RESYNC_PAGE_CHARS
    if len(content) <= page:
        return [chunk_frame_text(content=content, message_id=message_id, offset=offset)]
    return [
        chunk_frame_text(content=content[start : start + page], message_id=message_id, offset=offset + start)
        for start in range(0, len(content), page)
    ]


def reasoning_frames_text(*, content: str, message_id: int, offset: int) -> list[str]:
    """The reasoning frames of a span of a reply's reasoning (the model's thinking before it answers):
    deltas with a code-point `offset` of their own, paged as chunks are. Never part of the reply's text."""
    page = settings.CHAT_RESYNC_PAGE_CHARS
    return [
        orjson.dumps(
            {
                "type": "reasoning",
                "content": content[start : start + page],
                "message_id": message_id,
                "offset": offset + start,
            }
        ).decode()
        for start in range(0, len(content), page)
    ]


def tool_frame(*, message_id: int, activity: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool", "message_id": message_id, **activity}


def tool_activity_of(frame_text: str) -> dict[str, Any]:
    """The activity a serialised tool frame carries (what `tool_frame` was given)."""
    frame = orjson.loads(frame_text)
    return {key: value for key, value in frame.items() if key not in ("type", "message_id")}


def history_frame(*, session_id: str, history: dict[str, Any]) -> dict[str, Any]:
    """A conversation as a socket is shown it: `history` holds its messages (selectors.conversation_history),
    and `streaming`, the reply in flight, when one is."""
    return {"type": "history", "session_id": session_id, **history}


def history_page_frame(*, before: int, page: dict[str, Any]) -> dict[str, Any]:
    """The page of the active branch before message `before` (selectors.conversation_history_page)."""
    return {"type": "history_page", "before": before, **page}


def duplicate_frame(*, client_id: str, message_id: int) -> dict[str, Any]:
    """A resent `client_id`: the turn was stored already, in the message `message_id`; nothing starts."""
    return {"type": "duplicate", "client_id": client_id, "message_id": message_id}


def feedback_frame(*, message_id: int, value: int, comment: str) -> dict[str, Any]:
    """The owner's feedback on reply `message_id` changed (0: taken back)."""
    return {"type": "feedback", "message_id": message_id, "value": value, "comment": comment}


def title_frame(*, title: str) -> dict[str, Any]:
    """The conversation's title changed (written by the model, or renamed)."""
    return {"type": "title", "title": title}


def done_frame(
    *,
    message_id: int,
    usage: dict[str, int] | None,
    finish_reason: str,
    served_models: Sequence[str] | None = None,
    handoff_offsets: Sequence[int] | None = None,
    reasoning_ms: int | None = None,
    tool_calls: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A reply's end; `served_models`, when its stream named them, are the models that wrote it, in order,
    and `handoffs` where each after the first took over; `reasoning_ms`, for a model that thought, how
    long it did; `tool_calls`, when it called an API client's tools, those calls."""
    frame = {"type": "done", "message_id": message_id, "usage": usage, "finish_reason": finish_reason}
    if tool_calls:
        frame["tool_calls"] = list(tool_calls)
    if reasoning_ms is not None:
        frame["reasoning_ms"] = reasoning_ms
    if served_models:
        frame["served_models"] = served_models
    handoffs = handoffs_of(served_models or (), handoff_offsets or ())
    if handoffs:
        frame["handoffs"] = handoffs
    return frame


def handoffs_of(served_models: Sequence[str], handoff_offsets: Sequence[int]) -> list[dict[str, Any]]:
    """Each handoff of a reply: the model that took over and the code-point offset of its first text."""
    return [
        {"model": model, "offset": offset}
        for model, offset in zip(served_models[1:], handoff_offsets, strict=False)
    ]
