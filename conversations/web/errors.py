"""Django's error answers for the API: a client of /api/ reads JSON, never an HTML page. A body Django
cannot parse (a multipart part whose headers pass Django's 1,024-byte bound, as a very long file name
does) is refused in the request's parsing, before any view runs, and would otherwise get that page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

API_PREFIX = "/api/"
ATTACHMENTS_PREFIX = "/api/attachments/"


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The 400 of a request Django refused (unparsable body, suspicious operation): JSON under /api/."""
    if request.path.startswith(ATTACHMENTS_PREFIX):
        return JsonResponse(
            {
                "code": "invalid_attachment",
                "message": "That upload could not be read; a file name may have at most 255 characters.",
            },
            status=400,
        )
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"code": "bad_request", "message": "That request could not be read."}, status=400)
    return defaults.bad_request(request, exception)
