"""CORS for /v1/: off unless CHAT_API_CORS_ORIGINS names origins (or `*`). An allowed origin's requests
get Access-Control-Allow-Origin (errors too, so a page can read why), and its preflight OPTIONS is
answered here, before any key is asked for. Keys travel in a header, never in cookies, so no
credentials are allowed."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from inspect import iscoroutinefunction
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

PREFLIGHT_MAX_AGE = 600  # seconds a browser may keep a preflight's answer
# OpenAI's SDKs send headers of their own (x-stainless-…) beside the key: a preflight's list of header
# names is allowed as asked, when it is one (names of letters, digits and dashes, of a bounded length).
ASKED_HEADERS_RE = re.compile(r"[A-Za-z0-9-]+(?:\s*,\s*[A-Za-z0-9-]+)*")
ASKED_HEADERS_MAX_CHARS = 1000
ALWAYS_ALLOWED_HEADERS = "Authorization, Content-Type"


def origin_allowed(origin: str) -> bool:
    allowed = settings.CHAT_API_CORS_ORIGINS
    return bool(origin) and ("*" in allowed or origin in allowed)


def allowed_headers(request: HttpRequest) -> str:
    """The headers a preflight may send: those it asks for, when it asks in a well-formed list."""
    asked = request.headers.get("Access-Control-Request-Headers", "").strip()
    if len(asked) <= ASKED_HEADERS_MAX_CHARS and ASKED_HEADERS_RE.fullmatch(asked):
        return f"{ALWAYS_ALLOWED_HEADERS}, {asked}"
    return ALWAYS_ALLOWED_HEADERS


def cors_answered(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer a preflight (204; with CORS headers when its origin is allowed), and put the CORS headers
    on the view's answer to an allowed origin."""

    def preflight(request: HttpRequest, origin: str) -> HttpResponse:
        response = HttpResponse(status=204)
        if origin_allowed(origin):
            response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response["Access-Control-Allow-Headers"] = allowed_headers(request)
            response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        return response

    def headed(response: HttpResponse, origin: str) -> HttpResponse:
        if origin_allowed(origin):
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Expose-Headers"] = "Retry-After, X-Conversation-Id"
        patch_vary_headers(response, ["Origin"])
        return response

    if iscoroutinefunction(view):

        @wraps(view)
        async def answered_async(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            origin = request.headers.get("Origin", "")
            if request.method == "OPTIONS":
                return headed(preflight(request, origin), origin)
            return headed(await view(request, *args, **kwargs), origin)

        return answered_async

    @wraps(view)
    def answered(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        origin = request.headers.get("Origin", "")
        if request.method == "OPTIONS":
            return headed(preflight(request, origin), origin)
        return headed(view(request, *args, **kwargs), origin)

    return answered
