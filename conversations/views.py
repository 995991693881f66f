"""The chat page and sign-in. Conversation content comes over the socket, never through the template."""

import hmac
import secrets
from functools import wraps
from typing import Any

import prometheus_client
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from . import health, selectors, services


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
