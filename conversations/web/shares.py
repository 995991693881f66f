"""Share links over HTTP: the owner's share, revoke and look-up of a conversation's link, the read-only
shared page anyone with the link sees (a signed-in user, for a login-only share), and "continue this
conversation". Another owner's conversation answers exactly as a missing one: 404."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import request_limits
from ..accounts.handover import anonymous_owner_note
from ..accounts.logins import client_address
from ..chat import selectors
from ..exceptions import ChatError, InvalidShare, NotFound, RateLimited, ShareTooLarge
from ..models import Share
from ..owners import Owner, session_key_loaded
from ..sharing import shares
from .access import conversation_owner_required, not_found
from .errors import error_headers, errors_answered


def _share_as_dict(request: HttpRequest, share: Share) -> dict[str, object]:
    """What the owner is told of their link: `{"url", "login_required", "shared_at"}`."""
    url = request.build_absolute_uri(reverse("conversations:shared", kwargs={"token": share.token}))
    return {"url": url, "login_required": share.login_required, "shared_at": share.updated_at.isoformat()}


def _login_required_option(body: bytes) -> bool:
    """The POST body's `login_required` (false when the body is empty); raise InvalidShare for anything
    else."""
    try:
        options = json.loads(body or b"{}")
    except ValueError as exc:
        raise InvalidShare() from exc
    value = options.get("login_required", False) if isinstance(options, dict) else None
    if not isinstance(value, bool):
        raise InvalidShare()
    return value


@require_http_methods(["GET", "POST", "DELETE"])
@errors_answered
@conversation_owner_required(refused=not_found)
def conversation_share(request: HttpRequest, owner: Owner, session_id: str) -> HttpResponse:
    """`POST /c/<id>/share` (JSON `{"login_required": bool}`, optional) shares the conversation as it is
    now, or takes its snapshot again under the same URL; `GET` tells its link; `DELETE` revokes it."""
    if request.method == "DELETE":
        if not shares.share_revoke(owner_key=owner.key, session_id=session_id):
            raise NotFound()
        return JsonResponse({"ok": True})
    if request.method == "GET":
        share = shares.share_of_conversation(owner_key=owner.key, session_id=session_id)
    else:
        login_required = _login_required_option(request.body)
        share = shares.share_create(owner_key=owner.key, session_id=session_id, login_required=login_required)
    if share is None:
        raise NotFound()
    return JsonResponse(_share_as_dict(request, share))


SHARE_GONE = {
    "heading": "This shared chat is not available",
    "detail": "Its owner stopped sharing it, or the link was never right. Ask them for a new link.",
}


def _viewable_share(request: HttpRequest, token: str) -> Share | HttpResponse:
    """The share of `token` if this requester may see it; else the 404, or the login page's redirect."""
    share = shares.share_of_token(token=token)
    if share is None:  # the product's page, not Django's (whose DEBUG one make run would show)
        return render(request, "404.html", SHARE_GONE, status=404)
    if (share.login_required or settings.CHAT_REQUIRE_LOGIN) and not request.user.is_authenticated:
        return redirect_to_login(reverse("conversations:shared", kwargs={"token": token}))
    return share


def _shared_page_render(request: HttpRequest, share: Share, refusal: ChatError | None = None) -> HttpResponse:
    """The shared page of `share`; with `refusal`, saying why continuing it was refused, with its status
    and headers."""
    page = render_to_string(
        "conversations/shared.html",
        {
            "share": share,
            "title": share.title or "Shared chat",
            "messages": shares.share_messages(share=share),
            "model_labels": selectors.model_labels(),
            "refusal": refusal,
        },
        request,
    )
    if refusal is None:
        return HttpResponse(page)
    return HttpResponse(page, status=refusal.status_code, headers=error_headers(refusal))


@require_GET
@never_cache  # a revoked link must not live on in a cache
def shared_page(request: HttpRequest, token: str) -> HttpResponse:
    """The read-only shared conversation: the snapshot, no owner, and a button to continue it."""
    share = _viewable_share(request, token)
    if isinstance(share, HttpResponse):
        return share
    return _shared_page_render(request, share)


@require_POST
def shared_continue(request: HttpRequest, token: str) -> HttpResponse:
    """Copy the shared snapshot into a new conversation of the viewer and open it (CSRF applies).

    Over a continue rate (the anonymous viewer's address is counted before a session is made for it),
    or for a snapshot over the caps: the shared page again, saying why, with 429 (and Retry-After) or 413.
    """
    share = _viewable_share(request, token)
    if isinstance(share, HttpResponse):
        return share
    try:
        if not request.user.is_authenticated:
            request_limits.share_continue_address_check(address=client_address(request) or "")
        if not session_key_loaded(request.session):
            request.session.save()  # an anonymous viewer's copy belongs to this browser session
        owner = Owner.from_request(request)
        request_limits.share_continue_viewer_check(owner=owner)
        anonymous_owner_note(request)
        session_id = shares.share_continue(share=share, owner=owner)
    except (RateLimited, ShareTooLarge) as exc:
        return _shared_page_render(request, share, exc)
    return redirect("conversations:chat", session_id=session_id)
