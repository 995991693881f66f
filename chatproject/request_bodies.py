"""How large an HTTP request's body may be, by its path, and the ASGI middleware that holds every request
to it before the app reads a byte of it.

An upload (`POST /api/attachments/`) may carry CHAT_ATTACHMENT_MAX_BYTES plus its multipart envelope;
anything else CHAT_REQUEST_MAX_BYTES. Over it, the answer is 413 with `{"code", "message"}`, as the
attachment errors are (under /v1/, OpenAI's `{"error": {...}}`): a declared Content-Length is refused
without reading the body, and a body streamed without one (chunked) is cut off as soon as it passes the
limit. Under Daphne the request is refused even earlier, while it arrives (chatproject/daphne_requests.py);
this middleware holds for every ASGI server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.urls import reverse

from conversations.exceptions import AttachmentTooLarge, ChatError, RequestTooLarge
from conversations.openai_api.errors import openai_error_response
from conversations.web.errors import error_response

logger = logging.getLogger(__name__)

REFUSAL_STATUS = HTTPStatus.REQUEST_ENTITY_TOO_LARGE.value  # 413: both errors' status

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class BodyLimit:
    """The most bytes a request's body may have, and the error (a 413) that refuses one over it."""

    max_bytes: int
    error: ChatError
    openai_shaped: bool = False  # under /v1/: OpenAI's error shape, which its SDKs read

    def refusal(self) -> HttpResponse:
        return openai_error_response(self.error) if self.openai_shaped else error_response(self.error)

    def refusal_body(self) -> bytes:
        return self.refusal().content

    def refusal_headers(self) -> list[tuple[bytes, bytes]]:
        refusal = self.refusal()
        return [
            *((name.lower().encode(), value.encode()) for name, value in refusal.items()),
            (b"content-length", str(len(refusal.content)).encode()),
            (b"connection", b"close"),  # whatever is left of the body is not wanted
        ]


@cache
def upload_path() -> str:
    return reverse("conversations:attachment_upload")


def body_limit(path: str) -> BodyLimit:
    """The limit of a request to `path` (the path alone: no query string, percent-escapes decoded)."""
    if path == upload_path():
        most = settings.CHAT_ATTACHMENT_MAX_BYTES
        error = AttachmentTooLarge(f"At most {most:,} bytes per file.")
        return BodyLimit(most + settings.CHAT_ATTACHMENT_ENVELOPE_BYTES, error)
    most = settings.CHAT_REQUEST_MAX_BYTES
    error = RequestTooLarge(f"A request may carry at most {most:,} bytes.")
    return BodyLimit(most, error, openai_shaped=path.startswith("/v1/"))


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length a request declares, or None (none, or not a number: the body is then counted)."""
    for name, value in headers:
        if name.lower() == b"content-length" and value.strip().isdigit():
            return int(value)
    return None


def refusal_log(path: str, limit: BodyLimit, length: int | None) -> None:
    size = "unknown" if length is None else f"{length:,}"
    logger.info("request body refused: %s (%s bytes, at most %s)", path, size, f"{limit.max_bytes:,}")


class BodyLimitMiddleware:
    """Refuses an HTTP request whose body is over its path's limit before `app` reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        limit = body_limit(path)
        length = declared_length(scope["headers"])
        if length is not None and length > limit.max_bytes:
            refusal_log(path, limit, length)
            await _refusal_send(send, limit)
            return
        received = 0
        app_answered = refused = False

        async def bounded_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    if not (app_answered or refused):
                        refused = True
                        refusal_log(path, limit, None)
                        await _refusal_send(send, limit)
                    # The app stops reading as if the client had left (Django: RequestAborted, no answer).
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal app_answered
            if refused:
                return  # the app's answer to a body it never got whole
            app_answered = True
            await send(message)

        await self.app(scope, bounded_receive, guarded_send)


async def _refusal_send(send: Send, limit: BodyLimit) -> None:
    await send({"type": "http.response.start", "status": REFUSAL_STATUS, "headers": limit.refusal_headers()})
    await send({"type": "http.response.body", "body": limit.refusal_body()})
