"""The key a /v1/ request carries: checked on every request (apikeys.bearer), then counted against its
rate."""

from __future__ import annotations

from django.http import HttpRequest

from ..apikeys.bearer import api_key_authenticate, api_key_rate_check
from ..models import ApiKey

# A longer Authorization header is no key of ours: refused before any parsing.
HEADER_MAX_CHARS = 512


def request_key(request: HttpRequest) -> ApiKey:
    """The request's key (with its user); raise InvalidApiKey or RateLimited."""
    header = request.headers.get("Authorization", "")[: HEADER_MAX_CHARS + 1]
    key = api_key_authenticate("x" if len(header) > HEADER_MAX_CHARS else header)
    api_key_rate_check(key)
    return key
