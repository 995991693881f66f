"""Every failure of /v1/ as OpenAI's API answers one, which OpenAI's SDKs read into their exceptions:
`{"error": {"message", "type", "code", "param"}}` with the error's HTTP status (and Retry-After when it
says when to try again). `code` is the project's own error code (docs/openai-api.md)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from inspect import iscoroutinefunction
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ..exceptions import ChatError, InternalError, MethodNotAllowed, NotFound
from .cors import cors_answered

logger = logging.getLogger(__name__)

# OpenAI's error types by status; any other 4xx is the client's request.
TYPES = {401: "invalid_request_error", 429: "rate_limit_error"}


def error_type(status: int) -> str:
    return "server_error" if status >= 500 else TYPES.get(status, "invalid_request_error")


def openai_error_body(error: ChatError) -> dict[str, Any]:
    """The error as OpenAI's API words one: `{"error": {"message", "type", "code", "param"}}`."""
    return {
        "error": {
            "message": error.message or "Not found.",
            "type": error_type(error.status_code),
            "code": error.code,
            "param": error.details.get("param"),
        }
    }


def openai_error_response(error: ChatError) -> JsonResponse:
    body = openai_error_body(error)
    retry_after = error.details.get("retry_after")
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return JsonResponse(body, status=error.status_code, headers=headers)


def openai_errors_answered(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer a ChatError the view raises with its OpenAI-shaped error, and any other failure (logged)
    with an OpenAI-shaped 500: a client of /v1/ reads JSON, never Django's error page."""

    def failed(request: HttpRequest, exc: Exception) -> HttpResponse:
        if isinstance(exc, ChatError):
            return openai_error_response(exc)
        logger.error("%s %s failed", request.method, request.path[:200], exc_info=exc)
        return openai_error_response(InternalError("The server failed on that request; try again."))

    if iscoroutinefunction(view):

        @wraps(view)
        async def answered_async(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return await view(request, *args, **kwargs)
            except Exception as exc:
                return failed(request, exc)

        return answered_async

    @wraps(view)
    def answered(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Exception as exc:
            return failed(request, exc)

    return answered


def methods_only(*methods: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Refuse other methods with an OpenAI-shaped 405 (OPTIONS is the CORS layer's)."""

    def refuse(request: HttpRequest) -> None:
        if request.method not in methods:
            raise MethodNotAllowed(f"{request.method[:20]} is not allowed here; use {', '.join(methods)}.")

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        if iscoroutinefunction(view):

            @wraps(view)
            async def checked_async(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                refuse(request)
                return await view(request, *args, **kwargs)

            return checked_async

        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            refuse(request)
            return view(request, *args, **kwargs)

        return checked

    return decorate


@csrf_exempt
@cors_answered
def unknown_path(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any other path under /v1/: 404, OpenAI-shaped."""
    return openai_error_response(
        NotFound(f"Unknown request URL: {request.method[:20]} {request.path[:200]}.")
    )
