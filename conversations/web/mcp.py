"""MCP servers over HTTP: the check of a server list as a turn would judge it, and the signed-in user's
own credentials for the presets that ask each user for theirs."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods

from .. import protocol
from ..agents import answerers
from ..exceptions import InvalidCredentials, InvalidMcpServer, LoginRequired, NotFound
from ..mcp import credentials as mcp_credentials
from ..models import MCPServerPreset
from ..owners import Owner
from .access import conversation_owner_required, owner_missing
from .errors import errors_answered


@require_GET
@errors_answered
@conversation_owner_required(
    refused=owner_missing(
        sign_in="Sign in to check MCP servers.",
        session_only="MCP servers are checked for a signed-in user or a browser session.",
    )
)
def mcp_servers_check(request: HttpRequest, owner: Owner) -> JsonResponse:
    """Judge `?servers=` (comma separated) as a turn judges its `mcp_servers`, sending and storing nothing:
    `{"ok": true}`, or `{"ok": false, "code": "invalid_mcp_server", "message"}` naming the entry at fault.

    Cheap enough to ask at every pause in typing: no upstream call, and at most one query (the presets
    offering an internal host, only when one is named)."""
    try:
        servers = protocol.mcp_servers_parse(request.GET.get("servers", "").split(","))
        answerers.mcp_servers_clean(servers or [])
    except InvalidMcpServer as exc:  # the check's answer, not a refusal of the request
        return JsonResponse({"ok": False, "code": exc.code, "message": exc.message})
    return JsonResponse({"ok": True})


@require_GET
def mcp_credentials_list(request: HttpRequest) -> HttpResponse:
    """The MCP presets that ask each user for credentials, and whether the signed-in user saved theirs
    (names and dates only: no value is ever sent back)."""
    user_id = request.user.pk if request.user.is_authenticated else None
    return JsonResponse(
        {"signed_in": user_id is not None, "presets": mcp_credentials.user_credentials_listed(user_id)}
    )


@require_http_methods(["PUT", "DELETE"])
@errors_answered
def mcp_credentials_one(request: HttpRequest, preset_id: int) -> HttpResponse:
    """Save (PUT `{"values": {name: value}}`) or remove (DELETE) the signed-in user's own credentials
    for one MCP preset. CSRF applies as to every form."""
    if not request.user.is_authenticated:
        raise LoginRequired("Sign in to keep credentials of your own.")
    preset = MCPServerPreset.objects.enabled().filter(pk=preset_id, user_credentials=True).first()
    if preset is None:
        raise NotFound("No such MCP server.")
    if request.method == "DELETE":
        mcp_credentials.user_credentials_delete(user_id=request.user.pk, preset_id=preset.pk)
        return JsonResponse({"saved": False})
    try:
        values = json.loads(request.body or b"null").get("values")
        saved = mcp_credentials.user_credentials_save(user_id=request.user.pk, preset=preset, values=values)
    except (ValueError, AttributeError) as exc:
        raise InvalidCredentials() from exc
    except ValidationError as exc:
        raise InvalidCredentials(" ".join(exc.messages)) from exc
    return JsonResponse({"saved": True, "updated_at": saved.updated_at.isoformat()})
