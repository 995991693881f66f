"""Who opens a chat socket: Channels' session and user lookup, read again once on a fresh database
connection when the pooled one it got had been dropped."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.db import InterfaceError, OperationalError


class HandshakeAuthMiddleware(AuthMiddleware):
    """AuthMiddleware whose lookup survives a connection the database dropped.

    The pool lends a connection used within the last second without pinging it
    (conversations/pooled_postgres): after a restart, a failover or a terminated backend, the first
    read on it fails, and the handshake would answer 500. The lookup only reads, so it is made once
    more; Channels closes the broken connection after the failed call, and the pool lends another.
    """

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        try:
            await super().resolve_scope(scope)
        except (OperationalError, InterfaceError):
            await super().resolve_scope(scope)


def handshake_auth_stack(inner: Any) -> Any:
    """Channels' AuthMiddlewareStack, with the lookup above."""
    return CookieMiddleware(SessionMiddleware(HandshakeAuthMiddleware(inner)))
