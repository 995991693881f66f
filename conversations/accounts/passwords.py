"""Password sign-in, which the operator may turn off (CHAT_PASSWORD_LOGIN) once single sign-on is set up."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend

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
