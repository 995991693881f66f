"""The chat page and sign-in. Conversation content comes over the socket, never through the template."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie

from ..accounts.handover import anonymous_owner_note
from ..accounts.signups import signup_awaits_approval, signup_open
from ..accounts.single_sign_on import sign_in_providers
from ..chat import selectors
from ..owners import Owner, session_key_loaded
from .access import login_required_if_configured


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
    user_id = request.user.pk if request.user.is_authenticated else None
    options = selectors.chat_page_options(user_id)
    # Only a signed-in user has API keys, so only they can have API conversations to filter.
    api_listed = user_id is not None and selectors.owner_has_api_conversations(
        owner_key=Owner(user_id=user_id).key
    )
    return render(
        request,
        "conversations/chat.html",
        {
            "session_id": session_id,
            "options": options,
            "standin_notice": settings.CHAT_STANDIN_NOTICE,
            "api_configured": bool(settings.DEDALUS_API_KEY),
            "api_conversations": api_listed,
        },
    )


class ChatAuthenticationForm(AuthenticationForm):
    """Django's sign-in form, that tells an account awaiting approval why it cannot sign in (only once
    its password is right)."""

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except ValidationError:
            username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
            if username and password and signup_awaits_approval(username=username, password=password):
                raise ValidationError(
                    "This account waits for an operator's approval; sign in once it is approved.",
                    code="awaiting_approval",
                ) from None
            raise


class ChatLoginView(auth_views.LoginView):
    """Django's login on the chat's own page, and a button for each single sign-on provider; the hand-over
    of the browser's anonymous conversations is every login's (handover.py). With CHAT_PASSWORD_LOGIN off
    the form is not shown, and a password posted anyway is refused (accounts/passwords.py)."""

    template_name = "registration/login.html"
    form_class = ChatAuthenticationForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        anonymous_owner_note(self.request)  # before a provider's sign-in, which posts elsewhere
        return {
            **super().get_context_data(**kwargs),
            "password_login": settings.CHAT_PASSWORD_LOGIN,
            "providers": sign_in_providers(self.request),
            "signup_open": signup_open(),
        }

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        """The page, whose CSP lets its buttons' forms be redirected to their providers (form-action)."""
        response = super().render_to_response(context, **kwargs)
        origins = sorted({provider["origin"] for provider in context["providers"] if provider["origin"]})
        if origins:
            response._csp_update = {"form-action": origins}  # type: ignore[attr-defined]
        return response

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.CHAT_PASSWORD_LOGIN:
            messages.error(request, "Password sign-in is off on this server: use a provider below.")
            return redirect(request.get_full_path())
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: Any) -> HttpResponse:
        anonymous_owner_note(self.request)  # a session from before the page noted it
        return super().form_valid(form)
