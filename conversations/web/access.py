"""Who may reach a view: the login page first when CHAT_REQUIRE_LOGIN is on, and the requester's Owner
for the views of their conversations, with the refusal (a ChatError, or Django's 404) for one that may not
have any over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

from ..exceptions import LoginRequired, NotFound, SessionRequired
from ..owners import Owner, http_refusal


def login_required_if_configured(view: Any) -> Any:
    """With CHAT_REQUIRE_LOGIN on, send anonymous visitors to the login page first."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.CHAT_REQUIRE_LOGIN and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return guarded


def not_found(refusal: str) -> NoReturn:
    """Refuse as for a conversation that does not exist: one that is not the requester's looks the same."""
    raise NotFound()


def owner_missing(*, sign_in: str, session_only: str) -> Callable[[str], NoReturn]:
    """The refusal of a JSON request without an owner: 401 saying `sign_in` when a login would help, 403
    saying `session_only` for a cookie-less client."""

    def refused(refusal: str) -> NoReturn:
        if refusal == "login_required":
            raise LoginRequired(sign_in)
        raise SessionRequired(session_only)

    return refused


def conversation_owner_required(*, refused: Callable[[str], NoReturn]) -> Callable[[Any], Any]:
    """Pass the view the requester's Owner as its second argument; for a requester that may not reach
    conversations over HTTP (see owners.http_refusal) `refused(code)` raises instead, the view never runs.
    Under errors_answered, a ChatError it raises is the answer."""

    def decorator(view: Any) -> Any:
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            owner = Owner.from_request(request)
            refusal = http_refusal(owner)
            if refusal is not None:
                refused(refusal)
            return view(request, owner, *args, **kwargs)

        return guarded

    return decorator
