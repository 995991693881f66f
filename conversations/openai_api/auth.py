"""The key a /v1/ request carries: checked on every request (apikeys.bearer), then counted against its
rate."""

from __future__ import annotations

from django.http import HttpRequest

from ..apikeys.bearer import api_key_authenticate, api_key_rate_check
from ..models import ApiKey


def request_key(request: HttpRequest) -> ApiKey:
    """The request's key (with its user); raise InvalidApiKey or RateLimited."""
    key = api_key_authenticate(request.headers.get("Authorization", ""))
    api_key_rate_check(key)
    return key
