"""POST /v1/chat/completions: a turn of an API conversation of the key's user, stored by the instance's
turn writer and streamed by its reply task exactly as a page's turn; this view only listens in the
conversation's room and answers in OpenAI's shapes, streamed (server-sent `chat.completion.chunk`s) or
whole (`chat.completion`). The reply belongs to the server, but nobody resumes an API stream: a client
that leaves stops it, and what arrived is stored."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from ..apikeys.offers import key_offers
from ..chat.api_threads import api_conversation_continued, api_conversation_exists
from ..chat.turns import PriorMessage, Turn, TurnRequest
from ..exceptions import ChatError, ConversationNotFound, ModelNotAllowed, ModelNotFound, UpstreamError
from ..models import ApiKey, Conversation
from ..owners import ConversationRef, Owner
from ..protocol import TurnOptions
from ..relay.dbcall import db_call
from ..relay.instance import Instance, instance_get
from ..relay.live import ConversationRoom
from ..relay.turns import turn_open
from ..validators import SESSION_ID_PATTERN
from .auth import request_key
from .completion_reply import (
    ReplyListener,
    Span,
    chunk_object,
    completion_object,
    finish_reason,
    tool_call_deltas,
    usage_object,
)
from .completion_request import CompletionRequest, completion_request_parse
from .cors import cors_answered
from .errors import error_type, methods_only, openai_error_response, openai_errors_answered

CONVERSATION_HEADER = "X-Conversation-Id"
# A reply's error after it started, as an HTTP status.
REPLY_ERROR_STATUS = {"upstream_payment_required": 402, "upstream_timeout": 504, "internal_error": 500}


@csrf_exempt  # a key in a header, never a cookie
@cors_answered
@openai_errors_answered
@methods_only("POST")
async def chat_completions(request: HttpRequest) -> HttpResponse:
    # Each read on a worker thread of its own (the relay's service calls), as the sockets' are.
    key = await db_call(request_key, retry=False)(request)
    parsed = completion_request_parse(request.body)
    options = await db_call(_options)(key=key, parsed=parsed)
    owner = Owner(user_id=key.user_id)
    asked = request.headers.get(CONVERSATION_HEADER, "").strip()
    session_id = await db_call(_conversation_pick)(owner_key=owner.key, asked=asked, history=parsed.history)
    continued = session_id is not None
    session_id = session_id or uuid.uuid4().hex
    instance = await instance_get()
    ref = ConversationRef(owner.key, session_id)
    turn_request = TurnRequest(
        ref=ref,
        owner=owner,
        options=options,
        streamed_by=instance.instance_id,
        content=parsed.content,
        source=Conversation.Source.API,
        preceding=() if continued else tuple(parsed.history),
        tool_results=tuple(parsed.tool_results),
        instructions=parsed.instructions,
        passthrough=parsed.passthrough,
    )
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
        events = _events(listener, turn, parsed, settle=lambda: _settle(instance, room, listener))
        response = StreamingHttpResponse(events, content_type="text/event-stream", headers=headers)
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
    try:
        model, text, reasoning, end = await _collected(listener, turn)
    finally:
        _settle(instance, room, listener)
    if end["type"] == "error":  # stored as failed, as on the page: the conversation goes on
        response = openai_error_response(_reply_error(end))
        response[CONVERSATION_HEADER] = session_id
        return response
    body = completion_object(
        reply_id=turn.reply_id, created=int(time.time()), model=model, text=text, reasoning=reasoning, end=end
    )
    return JsonResponse(body, headers=headers)


def _options(key: ApiKey, parsed: CompletionRequest) -> TurnOptions:
    """Who answers: the agent or model `model` names among what the key may use; 404 for what the
    user may not use, 403 for what the key's scope leaves out."""
    offer = next((offer for offer in key_offers(key) if offer.id == parsed.model), None)
    if offer is None:
        if key.scope and any(offer.id == parsed.model for offer in key_offers(key, scoped=False)):
            raise ModelNotAllowed(f"This API key may not use {parsed.model[:200]!r}.", param="model")
        raise ModelNotFound(
            f"The model {parsed.model[:200]!r} does not exist or you do not have access to it.",
            param="model",
        )
    if offer.agent:
        return TurnOptions(agent=offer.id, settings=parsed.settings)
    return TurnOptions(model=offer.id, mcp_servers=[], settings=parsed.settings)


def _conversation_pick(owner_key: str, asked: str, history: list[PriorMessage]) -> str | None:
    """The API conversation the request continues: the one its header names, else the one its history
    repeats; None: a new one."""
    if asked:
        if not re.fullmatch(SESSION_ID_PATTERN, asked) or not api_conversation_exists(
            owner_key=owner_key, session_id=asked
        ):
            raise ConversationNotFound(param=CONVERSATION_HEADER)
        return asked
    return api_conversation_continued(owner_key=owner_key, history=history)


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


def _reply_error(end: dict[str, Any]) -> ChatError:
    error = UpstreamError(end.get("message") or "The reply failed.", code=end.get("code") or "upstream_error")
    error.status_code = REPLY_ERROR_STATUS.get(error.code, 502)
    return error


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _events(
    listener: ReplyListener, turn: Turn, parsed: CompletionRequest, *, settle: Callable[[], None]
) -> AsyncIterator[bytes]:
    """The reply as server-sent events: a role chunk, a chunk per span (named by its model), the
    finishing chunk, the usage chunk when asked, `[DONE]`; a `: ping` comment while the model is
    silent. An error after the start is an `error` event, as OpenAI's API sends one."""
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
        while True:
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
                continue
            if item["type"] == "error":
                error = _reply_error(item)
                yield _sse(
                    {
                        "error": {
                            "message": error.message,
                            "type": error_type(error.status_code),
                            "code": error.code,
                            "param": None,
                        }
                    }
                )
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
