"""The chat page and sign-in. Conversation content comes over the socket, never through the template."""

import secrets
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from . import selectors, services


def login_required_if_configured(view: Any) -> Any:
    """With CHAT_REQUIRE_LOGIN on, send anonymous visitors to the login page first."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.CHAT_REQUIRE_LOGIN and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return guarded


@login_required_if_configured
def chat_new(request: HttpRequest) -> HttpResponse:
    """Start a new conversation under a fresh, unguessable id."""
    return redirect("conversations:chat", session_id=secrets.token_urlsafe(16))


@login_required_if_configured
def chat_page(request: HttpRequest, session_id: str) -> HttpResponse:
    """The chat page of one conversation (the owner's conversation of that id: another's is never shown)."""
    if request.session.session_key is None:
        request.session.save()  # anonymous chats belong to this browser session, so it needs a key
    options = selectors.chat_page_options()
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
    """Django's login, which also hands the browser session's anonymous conversations to the user."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: Any) -> HttpResponse:
        anonymous_session_key = self.request.session.session_key
        response = super().form_valid(form)  # login() gives the session a new key
        if anonymous_session_key:
            services.conversations_claim(session_key=anonymous_session_key, user_id=form.get_user().pk)
        return response
