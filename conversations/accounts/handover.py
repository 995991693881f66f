"""Every sign-in, wherever it happens (the chat's login page, the admin's, any other), hands the
browser's anonymous conversations and uploads to the user.

Django's `login()` gives the session a new key, and anonymous conversations are stored under the digest
of the old one; so the chat page notes the browser's anonymous owner in the session's data, which the new
key keeps, and `user_logged_in` reads it there.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest

from ..chat import upkeep
from ..owners import Owner, session_key_loaded

ANONYMOUS_OWNER = "chat_anonymous_owner"


def anonymous_owner_note(request: HttpRequest) -> None:
    """Note in the session whose anonymous conversations this browser has (once it has a session)."""
    key = session_key_loaded(request.session)
    if key and not request.user.is_authenticated and ANONYMOUS_OWNER not in request.session:
        request.session[ANONYMOUS_OWNER] = Owner(session_key=key).key


@receiver(user_logged_in, dispatch_uid="conversations.accounts.handover")
def conversations_hand_over(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    owner_key = session.pop(ANONYMOUS_OWNER, None) if session is not None else None
    if owner_key:
        upkeep.conversations_claim(session_owner=owner_key, user_id=user.pk)
