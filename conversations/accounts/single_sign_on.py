"""Single sign-on through OpenID Connect providers (django-allauth's): the account of a provider's `sub`,
made at its first sign-in and never through a form; no sign-up of allauth's own, no account found or
joined by e-mail; a failure told plainly on the sign-in page; the provider's groups synced at each
sign-in (provider_groups.py). The anonymous chats' hand-over and the sockets' end at logout are every
login's and logout's (handover.py, relay/logouts.py)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.signals import user_logged_in
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter, get_adapter
from allauth.socialaccount.models import SocialLogin
from allauth.socialaccount.providers.base import AuthError, AuthProcess
from django.contrib import messages
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from requests import RequestException

from .provider_groups import provider_groups_sync

logger = logging.getLogger(__name__)

OIDC = "openid_connect"
# What of a provider's error (its `error_description`, an exception's text) the page shows at most.
ERROR_SHOWN_CHARS = 300


def sign_in_providers(request: HttpRequest) -> list[dict[str, str]]:
    """Return the configured providers as the sign-in page's buttons: their name, the URL a sign-in
    through them starts at (a POST), and their issuer's origin, where that POST is redirected to."""
    return [
        {
            "name": provider.name,
            "url": provider.get_login_url(request),
            "origin": origin_of(provider.app.settings.get("server_url", "")),
        }
        for provider in get_adapter(request).list_providers(request)
        if provider.id == OIDC
    ]


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


def claims_of(sociallogin: SocialLogin) -> dict[str, Any]:
    """Return the sign-in's claims: the ID token's, and over them the userinfo endpoint's."""
    data = sociallogin.account.extra_data or {}
    return {**(data.get("id_token") or {}), **(data.get("userinfo") or {})}


def sign_in_refused(request: HttpRequest, text: str) -> ImmediateHttpResponse:
    """The sign-in page again, with `text` as its error (allauth answers with the response it carries)."""
    messages.error(request, text[:ERROR_SHOWN_CHARS])
    return ImmediateHttpResponse(HttpResponseRedirect(reverse("conversations:login")))


def provider_reached(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """allauth's sign-in or callback view, with a provider that could not be reached told on the sign-in
    page. Both views read the provider's discovery document before anything they guard (allauth lets a
    failure of it through as a server error): a provider down, or an issuer mistyped, is an operator's
    problem to see in the log and a user's to be told, not a 500."""

    @functools.wraps(view)
    def reached(request: HttpRequest, provider_id: str) -> HttpResponse:
        try:
            return view(request, provider_id=provider_id)
        except RequestException as exc:
            logger.warning("identity provider %s could not be reached", provider_id, exc_info=True)
            name = get_adapter(request).get_provider(request, provider_id).name
            reason = f"the provider could not be reached ({type(exc).__name__}). Try again later."
            return sign_in_refused(request, f"Sign-in with {name} failed: {reason}").response

    return reached


class LocalAccountAdapter(DefaultAccountAdapter):
    """allauth's accounts, as far as single sign-on needs them: no sign-up of their own (an account is the
    operator's, from the admin, or a configured provider's)."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def respond_user_inactive(self, request: HttpRequest, user: Any) -> HttpResponse:
        raise sign_in_refused(request, "This account is inactive: ask the operator to activate it again.")


class ProviderAccountAdapter(DefaultSocialAccountAdapter):
    """A configured provider's sign-ins: its `sub` names the account, which its first sign-in makes."""

    def list_apps(self, request: HttpRequest, provider: str | None = None, client_id: str | None = None):
        """allauth's apps, from CHAT_OIDC_PROVIDERS and the admin's *Social applications*, one per
        provider id: of two with one id (allauth cannot pick one to sign in with, and the page would
        show two buttons of one URL), the environment's, else the first made; the others are logged."""
        apps = super().list_apps(request, provider=provider, client_id=client_id)
        kept: dict[str, Any] = {}
        for app in sorted(apps, key=lambda app: (app.pk is not None, app.pk or 0)):
            key = app.provider_id or app.provider
            if key in kept:
                logger.warning("a second app of provider id %s (%s) is left aside", key, app.name)
                continue
            kept[key] = app
        return list(kept.values())

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return True  # the operator allowed the provider's users by configuring it

    def is_auto_signup_allowed(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return True  # never allauth's sign-up form

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """Refuse a sign-in whose account is not named by its `sub`: a provider's app set up (its
        `uid_field`) with another claim, or an ID token and a userinfo answer of two different subjects;
        and anything but a sign-in (allauth's `process=connect` would attach the provider's account to
        the one signed in, and its other processes land on pages that are not mounted)."""
        if sociallogin.state.get("process", AuthProcess.LOGIN) != AuthProcess.LOGIN:
            raise sign_in_refused(request, "A provider only signs people in here.")
        data = sociallogin.account.extra_data or {}
        subjects = {str(part.get("sub")) for part in (data.get("id_token"), data.get("userinfo")) if part}
        if subjects != {sociallogin.account.uid}:
            raise sign_in_refused(request, "The provider's answer does not name its user by sub alone.")

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin, data: dict[str, Any]) -> Any:
        """The new account's fields from the claims; its e-mail only when the provider verified it. The
        e-mail addresses are not kept as allauth's, so none ever finds or joins an account."""
        user = super().populate_user(request, sociallogin, data)
        verified = [address.email for address in sociallogin.email_addresses if address.verified]
        user.email = verified[0] if verified else ""
        sociallogin.email_addresses = []
        return user

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: str | None = None,
        exception: Exception | None = None,
        extra_context: dict[str, Any] | None = None,
    ) -> None:
        reason = failure_text(request, error, exception, extra_context or {})
        raise sign_in_refused(request, f"Sign-in with {provider.name} failed: {reason}")


def failure_text(
    request: HttpRequest, error: str | None, exception: Exception | None, extra_context: dict[str, Any]
) -> str:
    """Say why a sign-in through a provider failed, in the provider's own words when it gave some."""
    if "error" in request.GET:
        code = request.GET.get("error", "")[:100]
        description = request.GET.get("error_description", "")
        return f"the provider answered {code}" + (f": {description}" if description else ".")
    if error == AuthError.CANCELLED:
        return "it was cancelled."
    if exception is not None:
        return f"{exception}" or type(exception).__name__
    if "state" not in extra_context or extra_context.get("state") is None:
        return (
            "this browser did not start it, or started it too long ago (its state does not match). Try again."
        )
    return "the provider's answer had no authorisation code."


@receiver(user_logged_in, dispatch_uid="conversations.accounts.single_sign_on")
def provider_groups_on_sign_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    sociallogin = kwargs.get("sociallogin")
    if sociallogin is not None:
        provider_groups_sync(user=user, claims=claims_of(sociallogin))
