"""Password sign-in, which the operator may turn off (CHAT_PASSWORD_LOGIN) once single sign-on is set up,
and the accounts whose way in is a password (an invitation's, a sign-up's)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import IntegrityError, transaction

from ..exceptions import UsernameTaken

# The backend a session made by the chat itself (an accepted invitation) is stored under: the one that
# reads every session's user back, so it must be one of AUTHENTICATION_BACKENDS.
SESSION_BACKEND = "conversations.accounts.passwords.PasswordLoginBackend"


class PasswordLoginBackend(ModelBackend):
    """Django's ModelBackend, whose password check answers no one while CHAT_PASSWORD_LOGIN is off.

    It still reads back the user of every session (a provider's sign-in is stored under it too), so
    turning passwords off ends no one's session; the chat's and the admin's login forms both authenticate
    through it, so neither takes a password then."""

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ):
        if not settings.CHAT_PASSWORD_LOGIN:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def password_account_create(*, username: str, email: str, password: str, active: bool = True) -> Any:
    """An account whose way in is a password (an invitation's, a sign-up's, inactive until approved).
    Raise UsernameTaken for a name another account took meanwhile (the unique index decides)."""
    try:
        with transaction.atomic():
            return get_user_model()._default_manager.create_user(username, email, password, is_active=active)
    except IntegrityError as exc:
        raise UsernameTaken() from exc
