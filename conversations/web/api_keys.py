"""A signed-in user's API keys over HTTP (the page's "API keys" panel): list and make (`/api/api-keys/`),
revoke one (`/api/api-keys/<id>/`). A new key is in the answer that made it, and nowhere ever again.
Another user's key answers as a missing one: 404. CSRF applies as to every form."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_http_methods

from ..apikeys import keys
from ..exceptions import InvalidApiKeyRequest, LoginRequired
from .errors import errors_answered

SHAPE = 'Send a JSON object: {"name": "…", "expires_days": null or a number of days}.'


def _keyholder(request: HttpRequest) -> int:
    if not request.user.is_authenticated:
        raise LoginRequired("Sign in to make API keys.")
    return request.user.pk


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, RecursionError) as exc:
        raise InvalidApiKeyRequest(SHAPE) from exc
    if not isinstance(data, dict) or set(data) - {"name", "expires_days"}:
        raise InvalidApiKeyRequest(SHAPE)
    return data


@require_http_methods(["GET", "POST"])
@errors_answered
def api_keys(request: HttpRequest) -> HttpResponse:
    """GET: the user's keys (never the keys themselves), how many they may keep and the longest life a key
    may have. POST: make one (201: the key's row, and `key`, shown this once)."""
    user_id = _keyholder(request)
    if request.method == "GET":
        return JsonResponse(
            {
                "keys": keys.api_keys_listed(user_id),
                "max": settings.CHAT_API_KEYS_PER_USER,
                "max_days": settings.CHAT_API_KEY_MAX_DAYS or None,
            }
        )
    data = _body(request)
    row, key = keys.api_key_create(
        user_id, name=data.get("name") or "", expires_at=keys.expiry_from_days(data.get("expires_days"))
    )
    return JsonResponse({**keys.api_key_as_dict(row), "key": key}, status=201)


@require_http_methods(["DELETE"])
@errors_answered
def api_key(request: HttpRequest, key_id: int) -> HttpResponse:
    """DELETE: revoke one of the user's keys; it stops working at once."""
    keys.api_key_revoke(_keyholder(request), key_id)
    return JsonResponse({"revoked": True})
