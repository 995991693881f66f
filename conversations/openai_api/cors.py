"""CORS for /v1/: off unless CHAT_API_CORS_ORIGINS names origins (or `*`). An allowed origin's requests
get Access-Control-Allow-Origin (errors too, so a page can read why), and its preflight OPTIONS is
answered here, before any key is asked for. Keys travel in a header, never in cookies, so no
credentials are allowed."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

PREFLIGHT_MAX_AGE = 600  # seconds a browser may keep a preflight's answer


def origin_allowed(origin: str) -> bool:
    allowed = settings.CHAT_API_CORS_ORIGINS
    return bool(origin) and ("*" in allowed or origin in allowed)


def cors_answered(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer a preflight (204; with CORS headers when its origin is allowed), and put the CORS headers
    on the view's answer to an allowed origin."""

    @wraps(view)
    def answered(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        origin = request.headers.get("Origin", "")
        if request.method == "OPTIONS":
            response = HttpResponse(status=204)
            if origin_allowed(origin):
                response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
                response["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
                response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        else:
            response = view(request, *args, **kwargs)
        if origin_allowed(origin):
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Expose-Headers"] = "Retry-After"
        patch_vary_headers(response, ["Origin"])
        return response

    return answered
