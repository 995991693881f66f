"""POST /v1/chat/completions: a turn of an API conversation of the key's user, stored by the instance's
turn writer and streamed by its reply task exactly as a page's turn; this view only listens in the
conversation's room and answers in OpenAI's shapes, streamed (server-sent `chat.completion.chunk`s) or
whole (`chat.completion`). The reply belongs to the server, but nobody resumes an API stream: a client
that leaves stops it, and what arrived is stored."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from ..chat.turns import Turn
from ..exceptions import ChatError, UpstreamError
from ..relay.dbcall import db_call
from ..relay.instance import Instance, instance_get
from ..relay.live import ConversationRoom
from ..relay.turns import turn_open
from .completion_reply import (
    ReplyListener,
    Span,
    chunk_object,
    completion_object,
    finish_reason,
    tool_call_deltas,
    usage_object,
)
from .completion_request import CompletionRequest
from .completion_turn import CONVERSATION_HEADER, completion_turn
from .cors import cors_answered
from .errors import methods_only, openai_error_body, openai_error_response, openai_errors_answered

# A reply's error after its turn was stored, as an HTTP status (any other: 502).
REPLY_ERROR_STATUS = {
    "upstream_rate_limited": 429,
    "upstream_payment_required": 402,
    "upstream_timeout": 504,
    "internal_error": 500,
}


@csrf_exempt  # a key in a header, never a cookie
@cors_answered
@openai_errors_answered
@methods_only("POST")
async def chat_completions(request: HttpRequest) -> HttpResponse:
    instance = await instance_get()
    asked = await db_call(completion_turn, retry=False)(request=request, streamed_by=instance.instance_id)
    parsed, turn_request, session_id = asked.parsed, asked.turn, asked.session_id
    ref = turn_request.ref
    room = instance.rooms.get(ref)
    listener = ReplyListener(lambda: room.reply, ended=lambda: _leave(instance, room, listener))
    room.subscribers[id(listener)] = listener.send  # before the turn: its `start` and every chunk
    try:
        turn = await turn_open(instance, turn_request)
    except BaseException:
        _settle(instance, room, listener)
        raise
    assert isinstance(turn, Turn)  # an API turn carries no client id: never a duplicate
    headers = {CONVERSATION_HEADER: session_id}
    if parsed.stream:
        try:
            first = await _first_item(listener)
        except BaseException:
            _settle(instance, room, listener)
            raise
        if isinstance(first, dict) and first["type"] == "error":  # the response has not started
            _settle(instance, room, listener)
            return _reply_error_response(first, session_id)
        events = _events(listener, turn, parsed, first, settle=lambda: _settle(instance, room, listener))
        response = StreamingHttpResponse(events, content_type="text/event-stream", headers=headers)
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
    collecting = asyncio.ensure_future(_collected(listener, turn))

    def settle() -> None:
        collecting.cancel()
        _settle(instance, room, listener)

    try:
        await asyncio.wait([collecting], timeout=settings.CHAT_API_PING_SECONDS)
    except BaseException:  # the client left
        settle()
        raise
    if not collecting.done():  # a long reply: its status goes now, its body when it ends
        kept_alive = _kept_alive(collecting, turn, settle=settle)
        return StreamingHttpResponse(kept_alive, content_type="application/json", headers=headers)
    settle()
    model, text, reasoning, end = collecting.result()
    if end["type"] == "error":  # stored as failed, as on the page: the conversation goes on
        return _reply_error_response(end, session_id)
    return JsonResponse(_completion_body(turn, model, text, reasoning, end), headers=headers)


def _settle(instance: Instance, room: ConversationRoom, listener: ReplyListener) -> None:
    """The request is done with its reply: a reply of its own still streaming is stopped (its client
    left, and nobody resumes an API stream; its text so far is stored as interrupted), and the listener
    leaves the room."""
    reply = room.reply
    if reply is not None and reply.local and reply.message_id == listener.reply_id and not reply.ending:
        reply.cancel(reason="stopped")
    _leave(instance, room, listener)


def _leave(instance: Instance, room: ConversationRoom, listener: ReplyListener) -> None:
    room.subscribers.pop(id(listener), None)
    instance.rooms.release(room)


async def _collected(listener: ReplyListener, turn: Turn) -> tuple[str, str, str, dict[str, Any]]:
    """The whole reply: its first model, its text, its reasoning and its end frame."""
    parts: list[str] = []
    thoughts: list[str] = []
    model = ""
    while True:
        item = await listener.queue.get()
        if isinstance(item, Span):
            if item.reasoning:
                thoughts.append(item.text)
                continue
            model = model or item.model
            parts.append(item.text)
        else:
            return model or turn.model, "".join(parts), "".join(thoughts), item


def _completion_body(
    turn: Turn, model: str, text: str, reasoning: str, end: dict[str, Any]
) -> dict[str, Any]:
    """The `chat.completion` of an ended reply, or OpenAI's error object when it failed."""
    if end["type"] == "error":
        return openai_error_body(_reply_error(end))
    return completion_object(
        reply_id=turn.reply_id, created=int(time.time()), model=model, text=text, reasoning=reasoning, end=end
    )


async def _kept_alive(
    collecting: asyncio.Future[tuple[str, str, str, dict[str, Any]]],
    turn: Turn,
    *,
    settle: Callable[[], None],
) -> AsyncIterator[bytes]:
    """A whole completion that outlasts CHAT_API_PING_SECONDS: a newline at once and one every
    CHAT_API_PING_SECONDS until the reply ends (JSON allows leading whitespace; the bytes keep proxies and
    the server's own --http-timeout, which times a started response by its silence, from closing it), then
    its body. Its status went out first, so a failure now comes as the error object, with 200."""
    try:
        while True:
            yield b"\n"
            done, _ = await asyncio.wait([collecting], timeout=settings.CHAT_API_PING_SECONDS)
            if done:
                break
        yield json.dumps(_completion_body(turn, *collecting.result()), separators=(",", ":")).encode()
    finally:
        settle()


async def _first_item(listener: ReplyListener) -> Span | dict[str, Any] | None:
    """The reply's first span or its end, if one comes within CHAT_API_PING_SECONDS (None: not yet).
    A stream's headers wait that long, so that a failure before any text (after the relay's retries)
    is answered with its status, as a whole completion's is; past it, the stream starts and pings."""
    try:
        async with asyncio.timeout(settings.CHAT_API_PING_SECONDS):
            return await listener.queue.get()
    except TimeoutError:
        return None


def _reply_error(end: dict[str, Any]) -> ChatError:
    """The error an `error` frame ending the reply says, with its HTTP status (and its Retry-After)."""
    error = UpstreamError(end.get("message") or "The reply failed.", code=end.get("code"))
    error.status_code = REPLY_ERROR_STATUS.get(error.code, 502)
    if end.get("retry_after") is not None:
        error.details["retry_after"] = end["retry_after"]
    return error


def _reply_error_response(end: dict[str, Any], session_id: str) -> HttpResponse:
    """The reply's failure, answered with its status; the conversation (its failed reply stored) named."""
    response = openai_error_response(_reply_error(end))
    response[CONVERSATION_HEADER] = session_id
    return response


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _events(
    listener: ReplyListener,
    turn: Turn,
    parsed: CompletionRequest,
    first: Span | dict[str, Any] | None,
    *,
    settle: Callable[[], None],
) -> AsyncIterator[bytes]:
    """The reply as server-sent events: a role chunk, a chunk per span (named by its model; `first`, when
    the view already took it, before the queue's), the finishing chunk, the usage chunk when asked,
    `[DONE]`; a `: ping` comment while the model is silent. An error after the start is an `error`
    event, as OpenAI's API sends one."""
    created = int(time.time())
    model = turn.model
    try:
        yield _sse(
            chunk_object(
                reply_id=turn.reply_id,
                created=created,
                model=model,
                delta={"role": "assistant", "content": ""},
            )
        )
        item = first
        while True:
            if item is None:
                try:
                    async with asyncio.timeout(settings.CHAT_API_PING_SECONDS):
                        item = await listener.queue.get()
                except TimeoutError:
                    yield b": ping\n\n"
                    continue
            if isinstance(item, Span):
                model = item.model
                delta = {"reasoning_content" if item.reasoning else "content": item.text}
                yield _sse(chunk_object(reply_id=turn.reply_id, created=created, model=model, delta=delta))
                item = None
                continue
            if item["type"] == "error":
                yield _sse(openai_error_body(_reply_error(item)))
                return
            for calls in tool_call_deltas(item.get("tool_calls") or []):
                delta = {"tool_calls": calls}
                yield _sse(chunk_object(reply_id=turn.reply_id, created=created, model=model, delta=delta))
            yield _sse(
                chunk_object(
                    reply_id=turn.reply_id, created=created, model=model, delta={}, finish=finish_reason(item)
                )
            )
            if parsed.include_usage:
                usage = _sse(
                    {
                        "id": f"chatcmpl-{turn.reply_id}",
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage_object(item.get("usage")),
                    }
                )
                yield usage
            yield b"data: [DONE]\n\n"
            return
    finally:
        settle()
