"""Every sign-out, wherever it happens (the chat's logout, the admin's, any other), ends the browser
session's open sockets on every instance (relay/session_ends.py): a tab left open neither reads nor
writes as the user, nor hears their replies from another device."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest

from ..owners import session_key_loaded
from .session_ends import session_ended_publish


@receiver(user_logged_out, dispatch_uid="conversations.relay.logouts")
def session_sockets_end(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    # Sent before the session is flushed: its key is still the one the sockets came with.
    session_ended_publish(session_key_loaded(getattr(request, "session", None)))
