"""Who owns a conversation, and how a conversation is named within its owner's namespace.

Conversations live in per-owner namespaces: the same session id under another owner is another,
fresh conversation. So a guessed or leaked id reveals nothing: not even whether it exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Clients with neither an account nor a browser session (API clients of the original page's socket)
# share one namespace, as on the original page, where only an unguessable id protects a conversation.
# CHAT_REQUIRE_LOGIN closes it.
PUBLIC_OWNER_KEY = "public"


@dataclass(frozen=True, slots=True)
class Owner:
    """Who is chatting: a signed-in user, an anonymous browser session, or a cookie-less client."""

    user_id: int | None = None
    session_key: str = ""

    @property
    def key(self) -> str:
        """The owner's namespace: `u:<user id>`, `s:<session key>` or `public`."""
        if self.user_id is not None:
            return f"u:{self.user_id}"
        if self.session_key:
            return f"s:{self.session_key}"
        return PUBLIC_OWNER_KEY

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None

    @classmethod
    def from_scope(cls, scope: dict[str, Any]) -> Owner:
        """The owner of a WebSocket handshake (its user, else its browser session)."""
        user, session = scope.get("user"), scope.get("session")
        if user is not None and user.is_authenticated:
            return cls(user_id=user.pk)
        return cls(session_key=(session.session_key or "") if session is not None else "")

    @classmethod
    def from_request(cls, request: Any) -> Owner:
        """The owner of an HTTP request (its user, else its browser session)."""
        if request.user.is_authenticated:
            return cls(user_id=request.user.pk)
        return cls(session_key=request.session.session_key or "")


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """A conversation as a socket names it: its owner's namespace and its session id."""

    owner_key: str
    session_id: str

    @property
    def room_key(self) -> str:
        return f"{self.owner_key}/{self.session_id}"
