"""The chat page and sign-in. Conversation content comes over the socket, never through the template."""

import hmac
import json
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn

import prometheus_client
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import protocol
from ..accounts.handover import anonymous_owner_note
from ..agents import answerers
from ..chat import selectors, upkeep
from ..exceptions import ChatError, InvalidMcpServer
from ..mcp import credentials as mcp_credentials
from ..models import MCPServerPreset
from ..owners import ConversationRef, Owner, http_refusal, session_key_loaded
from ..relay.titling import title_renamed
from ..text import text_storable
from . import health

# Conversations per page of the sidebar's list.
CONVERSATIONS_PAGE = 30
# The largest `offset` the list accepts: far past any real list, far below Postgres's bigint OFFSET limit.
CONVERSATIONS_MAX_OFFSET = 100_000_000
# Search texts are cut to this many characters.
SEARCH_MAX_CHARS = 200


def login_required_if_configured(view: Any) -> Any:
    """With CHAT_REQUIRE_LOGIN on, send anonymous visitors to the login page first."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.CHAT_REQUIRE_LOGIN and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return guarded


def not_found_json(refusal: str) -> HttpResponse:
    """The answer for a conversation that is not the requester's: the same as for one that does not exist."""
    return JsonResponse({"code": "not_found"}, status=404)


def _export_not_found(refusal: str) -> NoReturn:
    """Raise the 404 page of a missing conversation (whatever the refusal: it must not tell them apart)."""
    raise Http404("No such conversation.")


def _owner_missing(*, sign_in: str, session_only: str) -> Callable[[str], HttpResponse]:
    """The refusal of a JSON request without an owner: 401 saying `sign_in` when a login would help, 403
    saying `session_only` for a cookie-less client."""

    def refused(refusal: str) -> HttpResponse:
        if refusal == "login_required":
            return JsonResponse({"code": refusal, "message": sign_in}, status=401)
        return JsonResponse({"code": refusal, "message": session_only}, status=403)

    return refused


# An empty list would pretend the public namespace were a cookie-less client's own, and empty.
_list_refused = _owner_missing(
    sign_in="Sign in to see your conversations.",
    session_only="Conversations are listed for a signed-in user or a browser session.",
)


def conversation_owner_required(*, refused: Callable[[str], HttpResponse]) -> Callable[[Any], Any]:
    """Pass the view the requester's Owner as its second argument; a requester that may not reach
    conversations over HTTP (see owners.http_refusal) gets `refused(code)` instead, the view never runs."""

    def decorator(view: Any) -> Any:
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            owner = Owner.from_request(request)
            refusal = http_refusal(owner)
            if refusal is not None:
                return refused(refusal)
            return view(request, owner, *args, **kwargs)

        return guarded

    return decorator


@login_required_if_configured
def chat_new(request: HttpRequest) -> HttpResponse:
    """Start a new conversation under a fresh, unguessable id."""
    return redirect("conversations:chat", session_id=secrets.token_urlsafe(16))


@login_required_if_configured
@ensure_csrf_cookie  # the sidebar's rename and delete POST with it
def chat_page(request: HttpRequest, session_id: str) -> HttpResponse:
    """The chat page of one conversation (the owner's conversation of that id: another's is never shown)."""
    if not session_key_loaded(request.session):
        request.session.save()  # anonymous chats belong to this browser session, so it needs a standing key
    anonymous_owner_note(request)
    options = selectors.chat_page_options(request.user.pk if request.user.is_authenticated else None)
    return render(
        request,
        "conversations/chat.html",
        {
            "session_id": session_id,
            "options": options,
            "standin_notice": settings.CHAT_STANDIN_NOTICE,
            "api_configured": bool(settings.DEDALUS_API_KEY),
        },
    )


class ChatLoginView(auth_views.LoginView):
    """Django's login on the chat's own page; the hand-over of the browser's anonymous conversations is
    every login's (handover.py)."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: Any) -> HttpResponse:
        anonymous_owner_note(self.request)  # a session from before the page noted it
        return super().form_valid(form)


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers HTTP."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: Postgres, Redis and the upstream each answered (with their latency); else 503."""
    ready, checks = health.readiness()
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics of this instance; behind a bearer token when CHAT_METRICS_TOKEN is set."""
    token = settings.CHAT_METRICS_TOKEN
    if token and not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse("metrics need the bearer token\n", status=401, content_type="text/plain")
    return HttpResponse(
        prometheus_client.generate_latest(), content_type=prometheus_client.CONTENT_TYPE_LATEST
    )


def _list_offset(raw: str) -> int | None:
    """Return the list offset `raw` names, or None unless it is a whole number from 0 to the maximum."""
    # Checked as text first: int() of thousands of digits is slow, then refused.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(CONVERSATIONS_MAX_OFFSET))):
        return None
    offset = int(raw)
    return offset if offset <= CONVERSATIONS_MAX_OFFSET else None


@conversation_owner_required(refused=_list_refused)
def conversation_list(request: HttpRequest, owner: Owner) -> JsonResponse:
    """The requester's conversations, newest first; `?q=` searches titles and messages, `?offset=` pages."""
    offset = _list_offset(request.GET.get("offset", "0"))
    if offset is None:
        return JsonResponse(
            {
                "code": "invalid_offset",
                "message": f"offset must be a whole number from 0 to {CONVERSATIONS_MAX_OFFSET}.",
            },
            status=400,
        )
    # One more than a page is read, to tell whether another page follows.
    items = selectors.conversations_of_owner(
        owner_key=owner.key,
        query=text_storable(request.GET.get("q", "")).strip()[:SEARCH_MAX_CHARS],
        limit=CONVERSATIONS_PAGE + 1,
        offset=offset,
    )
    return JsonResponse(
        {
            "conversations": items[:CONVERSATIONS_PAGE],
            "offset": offset,
            "has_more": len(items) > CONVERSATIONS_PAGE,
        }
    )


@require_GET
def agent_list(request: HttpRequest) -> JsonResponse:
    """The agents the requester may pick (every enabled one; with CHAT_REQUIRE_LOGIN, for a signed-in
    user only). Cookie-less API clients may chat, so they may list them too."""
    if settings.CHAT_REQUIRE_LOGIN and not request.user.is_authenticated:
        return JsonResponse({"code": "login_required", "message": "Sign in to see the agents."}, status=401)
    return JsonResponse({"agents": selectors.agents_enabled()})


@require_GET
@conversation_owner_required(
    refused=_owner_missing(
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
    except InvalidMcpServer as exc:
        return JsonResponse({"ok": False, "code": exc.code, "message": exc.message})
    return JsonResponse({"ok": True})


def _sign_in_first(request: HttpRequest) -> HttpResponse | None:
    if request.user.is_authenticated:
        return None
    return JsonResponse(
        {"code": "login_required", "message": "Sign in to keep credentials of your own."}, status=401
    )


def _credentials_refused(message: str) -> HttpResponse:
    return JsonResponse({"code": "invalid_credentials", "message": message}, status=400)


@require_GET
def mcp_credentials_list(request: HttpRequest) -> HttpResponse:
    """The MCP presets that ask each user for credentials, and whether the signed-in user saved theirs
    (names and dates only: no value is ever sent back)."""
    user_id = request.user.pk if request.user.is_authenticated else None
    return JsonResponse(
        {"signed_in": user_id is not None, "presets": mcp_credentials.user_credentials_listed(user_id)}
    )


@require_http_methods(["PUT", "DELETE"])
def mcp_credentials_one(request: HttpRequest, preset_id: int) -> HttpResponse:
    """Save (PUT `{"values": {name: value}}`) or remove (DELETE) the signed-in user's own credentials
    for one MCP preset. CSRF applies as to every form."""
    refused = _sign_in_first(request)
    if refused is not None:
        return refused
    preset = MCPServerPreset.objects.enabled().filter(pk=preset_id, user_credentials=True).first()
    if preset is None:
        return JsonResponse({"code": "not_found", "message": "No such MCP server."}, status=404)
    if request.method == "DELETE":
        mcp_credentials.user_credentials_delete(user_id=request.user.pk, preset_id=preset.pk)
        return JsonResponse({"saved": False})
    try:
        values = json.loads(request.body or b"null").get("values")
        saved = mcp_credentials.user_credentials_save(user_id=request.user.pk, preset=preset, values=values)
    except (ValueError, AttributeError):
        return _credentials_refused('Send {"values": {name: value}}.')
    except ValidationError as exc:
        return _credentials_refused(" ".join(exc.messages))
    return JsonResponse({"saved": True, "updated_at": saved.updated_at.isoformat()})


@require_POST
@conversation_owner_required(refused=not_found_json)
def conversation_rename(request: HttpRequest, owner: Owner, session_id: str) -> HttpResponse:
    """Rename one of the requester's conversations (form field `title`); its open sockets hear of it."""
    try:
        title = upkeep.conversation_rename(
            owner_key=owner.key,
            session_id=session_id,
            title=request.POST.get("title", ""),
        )
    except ChatError as exc:
        return JsonResponse({"code": exc.code, "message": exc.message}, status=400)
    if title is None:
        return not_found_json("not_found")
    async_to_sync(title_renamed)(ConversationRef(owner.key, session_id), title)
    return JsonResponse({"ok": True})


@require_POST
@conversation_owner_required(refused=not_found_json)
def conversation_pin(request: HttpRequest, owner: Owner, session_id: str) -> HttpResponse:
    """Pin one of the requester's conversations to the top of their list, or unpin it: JSON
    `{"pinned": true | false}`. Answer `{"pinned"}`, or 404 for anyone else's conversation."""
    try:
        pinned = json.loads(request.body or b"null").get("pinned")
    except (ValueError, AttributeError):
        pinned = None
    if not isinstance(pinned, bool):
        return JsonResponse(
            {"code": "invalid_pin", "message": 'Send {"pinned": true} or {"pinned": false}.'}, status=400
        )
    found = upkeep.conversation_pin(owner_key=owner.key, session_id=session_id, pinned=pinned)
    return JsonResponse({"pinned": pinned}) if found else not_found_json("not_found")


@require_POST
@conversation_owner_required(refused=not_found_json)
def conversation_delete(request: HttpRequest, owner: Owner, session_id: str) -> HttpResponse:
    """Delete one of the requester's conversations (refused while a reply streams)."""
    try:
        found = upkeep.conversation_delete(owner_key=owner.key, session_id=session_id)
    except ChatError as exc:
        return JsonResponse({"code": exc.code, "message": exc.message}, status=409)
    return JsonResponse({"ok": True}) if found else not_found_json("not_found")


@conversation_owner_required(refused=_export_not_found)
def conversation_export(request: HttpRequest, owner: Owner, session_id: str, fmt: str) -> HttpResponse:
    """Download one of the requester's conversations as Markdown or JSON; 404 for anyone else."""
    export = selectors.conversation_export(owner_key=owner.key, session_id=session_id)
    if export is None:
        _export_not_found("not_found")  # raises
    if fmt == "json":
        response: HttpResponse = JsonResponse(export, json_dumps_params={"indent": 2, "ensure_ascii": False})
    else:
        response = HttpResponse(
            selectors.conversation_as_markdown(export), content_type="text/markdown; charset=utf-8"
        )
    response["Content-Disposition"] = f'attachment; filename="chat-{session_id}.{fmt}"'
    return response
