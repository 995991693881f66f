"""Joining without an identity provider: an invitation's page, where the invitee picks a username and a
password and is signed in, and the sign-up page (CHAT_SIGNUP=approval), whose accounts wait for an
operator's approval."""

from __future__ import annotations

from django.contrib.auth import get_user_model, login
from django.contrib.auth.forms import UserCreationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from .. import request_limits
from ..accounts import invites, passwords, signups
from ..accounts.handover import anonymous_owner_note
from ..accounts.logins import client_address
from ..exceptions import (
    InviteUnusable,
    NotFound,
    PasswordAccountsOff,
    RateLimited,
    SignUpsFull,
    UsernameTaken,
)
from .errors import error_headers

INVITE_UNKNOWN = {
    "heading": "This invitation does not exist",
    "detail": "The link may be mistyped or cut short. Ask whoever invited you to send it again.",
}
INVITE_UNUSABLE = {
    "heading": "This invitation cannot be used any more",
    "detail": "It was used already, or it expired. Ask whoever invited you for a new one.",
}
INVITE_PASSWORDS_OFF = {
    "heading": "Invitations are not used on this server",
    "detail": "People sign in through single sign-on here: use Log in, with your organisation's account.",
}


class AccountForm(UserCreationForm):
    """A new account's username and password (Django's password validators), labelled as the sign-in
    page labels its fields."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class SignUpForm(AccountForm):
    """Username, address and password; the address tells the operator who asks."""

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True
        self.fields["email"].help_text = "So that whoever approves accounts knows who you are."


@never_cache
@require_http_methods(["GET", "POST"])
def invite_accept(request: HttpRequest, token: str) -> HttpResponse:
    """An invitation's page: choose a username and a password; the account is made, signed in, and given
    this browser's anonymous conversations."""
    try:
        invite = invites.invite_of_token(token)
    except NotFound:
        return render(request, "404.html", INVITE_UNKNOWN, status=404)
    except InviteUnusable:
        return render(request, "404.html", INVITE_UNUSABLE, status=410)
    except PasswordAccountsOff:
        return render(request, "404.html", INVITE_PASSWORDS_OFF, status=410)
    # The account-to-be carries the invitation's address, so the password is checked against it too.
    account = get_user_model()(email=invite.email)
    form = AccountForm(request.POST if request.method == "POST" else None, instance=account)
    if request.method == "POST" and form.is_valid():
        try:
            user = invites.invite_accept(
                token=token, username=form.cleaned_data["username"], password=form.cleaned_data["password1"]
            )
        except InviteUnusable:  # another tab accepted it meanwhile
            return render(request, "404.html", INVITE_UNUSABLE, status=410)
        except UsernameTaken as exc:
            form.add_error("username", exc.message)
        else:
            anonymous_owner_note(request)  # a session from before the chat page noted it
            login(request, user, backend=passwords.SESSION_BACKEND)
            return redirect("conversations:new")
    return render(request, "registration/invite.html", {"form": form, "invite": invite})


@never_cache
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Ask for an account (only with CHAT_SIGNUP=approval; else 404): it is made inactive, and the page
    says that an operator must approve it before it can sign in. Posts are counted per client address."""
    if not signups.signup_open():
        raise Http404()
    if request.method == "GET":
        return render(request, "registration/signup.html", {"form": SignUpForm()})
    form = SignUpForm(request.POST)
    try:
        request_limits.signup_address_check(address=client_address(request) or "")
    except RateLimited as exc:
        form.add_error(None, exc.message)
        response = render(request, "registration/signup.html", {"form": form}, status=429)
        for name, value in error_headers(exc).items():
            response[name] = value
        return response
    if form.is_valid():
        try:
            signups.signup_create(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
            )
        except SignUpsFull as exc:
            form.add_error(None, exc.message)
            return render(request, "registration/signup.html", {"form": form}, status=503)
        except UsernameTaken as exc:
            form.add_error("username", exc.message)
        else:
            return render(
                request, "registration/signup_done.html", {"username": form.cleaned_data["username"]}
            )
    return render(request, "registration/signup.html", {"form": form})
