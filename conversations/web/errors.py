"""How an HTTP client hears of an error: a ChatError becomes `{"code", "message"}` with the class's status
(and Retry-After when it says when to try again). The views raise; `errors_answered` answers. The body
limit at the server's door (chatproject/request_bodies.py) answers with the same builder.

Django's own 400 (handler400) answers JSON under /api/ too: a client of /api/ reads JSON, never an HTML
page. A body Django cannot parse (a multipart part whose headers pass Django's 1,024-byte bound, as a very
long file name does) is refused in the request's parsing, before any view runs, and would otherwise get
that page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from ..exceptions import BadRequest, ChatError, InvalidAttachment

API_PREFIX = "/api/"
ATTACHMENTS_PREFIX = "/api/attachments/"


def error_headers(error: ChatError) -> dict[str, str]:
    """The headers that go with `error` over HTTP: Retry-After for a rate or a budget that says when."""
    if "retry_after" in error.details:
        return {"Retry-After": str(error.details["retry_after"])}
    return {}


def error_response(error: ChatError) -> JsonResponse:
    """`{"code", "message"}` with the error's status and headers; a code without a text (not_found) is
    sent alone."""
    body = {"code": error.code, "message": error.message} if error.message else {"code": error.code}
    return JsonResponse(body, status=error.status_code, headers=error_headers(error))


def errors_answered(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer a ChatError the view raises (or a decorator inside this one) with its error_response."""

    @wraps(view)
    def answered(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ChatError as exc:
            return error_response(exc)

    return answered


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The 400 of a request Django refused (unparsable body, suspicious operation): JSON under /api/."""
    if request.path.startswith(ATTACHMENTS_PREFIX):
        return error_response(
            InvalidAttachment("That upload could not be read; a file name may have at most 255 characters.")
        )
    if request.path.startswith(API_PREFIX):
        return error_response(BadRequest())
    return defaults.bad_request(request, exception)
