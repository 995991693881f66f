"""Who owns a conversation, who may reach conversations at all, and how a conversation is named within
its owner's namespace.

Conversations live in per-owner namespaces: the same session id under another owner is another,
fresh conversation. So a guessed or leaked id reveals nothing: not even whether it exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.db.models import Subquery
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

# Clients with neither an account nor a browser session (API clients of the original page's socket)
# share one namespace, where only an unguessable id protects a conversation. They may chat on the
# original path while CHAT_PUBLIC_SOCKETS allows it, and reach nothing over HTTP.
PUBLIC_OWNER_KEY = "public"

# The chat page's socket path (`/ws/chat/<id>/`) and the original page's, kept for API clients (`/ws/<id>`).
PAGE_SOCKET = "page"
API_SOCKET = "api"

# The close code of a socket without the owner its path needs (a login, or a browser session).
LOGIN_REQUIRED_CLOSE_CODE = 4401

# Changing the salt (or SECRET_KEY) renames every anonymous namespace: see docs/accounts-and-limits.md.
_SESSION_DIGEST_SALT = "conversations.owner"


def session_key_digest(session_key: str) -> str:
    """Return the keyed hash (32 hex characters) that stands for an anonymous browser session's key
    wherever it is stored: owner keys, Redis keys, rows and the admin. The key itself is a bearer
    credential, so it is never stored outside the session table."""
    return salted_hmac(_SESSION_DIGEST_SALT, session_key).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who is chatting: a signed-in user, an anonymous browser session, or a cookie-less client.

    `session_key` is the browser session the request or handshake came with (a signed-in user's too),
    kept in memory only, to check later that it still stands.
    """

    user_id: int | None = None
    session_key: str = ""

    @property
    def key(self) -> str:
        """The owner's namespace: `u:<user id>`, `s:<digest of the session key>` or `public`."""
        if self.user_id is not None:
            return f"u:{self.user_id}"
        if self.session_key:
            return f"s:{self.session_digest}"
        return PUBLIC_OWNER_KEY

    @property
    def session_digest(self) -> str:
        """The digest of the anonymous session that is this owner; "" for a user or a cookie-less client."""
        if self.user_id is not None or not self.session_key:
            return ""
        return session_key_digest(self.session_key)

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def is_public(self) -> bool:
        """True for a client with neither an account nor a browser session."""
        return self.user_id is None and not self.session_key

    @classmethod
    def from_scope(cls, scope: dict[str, Any]) -> Owner:
        """The owner of a WebSocket handshake (its user, else its browser session)."""
        user = scope.get("user")
        session_key = session_key_loaded(scope.get("session"))
        if user is not None and user.is_authenticated:
            return cls(user_id=user.pk, session_key=session_key)
        return cls(session_key=session_key)

    @classmethod
    def from_request(cls, request: Any) -> Owner:
        """The owner of an HTTP request (its user, else its browser session)."""
        session_key = session_key_loaded(request.session)
        if request.user.is_authenticated:
            return cls(user_id=request.user.pk, session_key=session_key)
        return cls(session_key=session_key)


def session_key_loaded(session: Any) -> str:
    """The key of a request's session once the store has loaded it; "" when there is none.

    Before loading, a session's key is just the cookie's value, whatever the client put there. Loading
    forgets a key the store does not hold (never issued, expired, flushed or purged), so a client cannot
    name an owner by a cookie: without a standing session it is cookie-less. The load is the one the
    user lookup makes anyway (cached on the session object)."""
    if session is None:
        return ""
    session.keys()  # loads the session (once per request): an unknown or expired key becomes None
    return session.session_key or ""


def http_refusal(owner: Owner) -> str | None:
    """Why this owner may not list, search, export, rename or delete conversations over HTTP:
    `login_required` (CHAT_REQUIRE_LOGIN and not signed in) or `session_required` (a cookie-less
    client: the public namespace is nobody's to browse). Return None when it may."""
    if settings.CHAT_REQUIRE_LOGIN and not owner.is_authenticated:
        return "login_required"
    if owner.is_public:
        return "session_required"
    return None


def socket_refusal(owner: Owner, path_kind: str) -> int | None:
    """The close code for a handshake this owner may not make on this path (PAGE_SOCKET or API_SOCKET),
    or None when it may chat.

    A cookie-less client is refused on the page's path, so a tab whose session is gone never slides into
    the public namespace; on the original path it chats while CHAT_PUBLIC_SOCKETS allows it.
    """
    if settings.CHAT_REQUIRE_LOGIN and not owner.is_authenticated:
        return LOGIN_REQUIRED_CLOSE_CODE
    if owner.is_public and not (path_kind == API_SOCKET and settings.CHAT_PUBLIC_SOCKETS):
        return LOGIN_REQUIRED_CLOSE_CODE
    return None


async def owner_still_valid(owner: Owner) -> bool:
    """Return True while the browser session `owner` came with still stands for it: it exists (not logged
    out, flushed or expired) and holds the same user, still signed in as Django would have it (active,
    password unchanged), or still no user for an anonymous owner. A cookie-less client has no session to
    lose: always True."""
    if owner.is_public:
        return True
    # On any worker thread (a session read is self-contained): thread-sensitive, every turn of the
    # process would queue on one thread.
    return await database_sync_to_async(_session_holds, thread_sensitive=False)(owner)


def _session_holds(owner: Owner) -> bool:
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if owner.user_id is not None and hasattr(store, "get_model_class"):
        return _signed_in_session_holds(owner, store)
    session = store(owner.session_key)
    data = session.load()
    if session.session_key is None:
        return False  # load() forgets a key whose session is gone or expired
    return _session_data_holds(owner, data, _users_get({owner.user_id} - {None}))


def _signed_in_session_holds(owner: Owner, store: Any) -> bool:
    """`_session_holds` for a signed-in owner of a database-backed session store, in one query (every
    frame of a signed-in tab makes it): the user, with its session's data (None once it expired or is
    gone) read beside it."""
    standing = store.get_model_class().objects.filter(
        session_key=owner.session_key, expire_date__gt=timezone.now()
    )
    user = (
        get_user_model()
        ._default_manager.filter(pk=owner.user_id)
        .annotate(chat_session_data=Subquery(standing.values("session_data")[:1]))
        .first()
    )
    if user is None or user.chat_session_data is None:
        return False
    return _session_data_holds(owner, store().decode(user.chat_session_data), {user.pk: user})


def _session_data_holds(owner: Owner, data: dict[str, Any], users: dict[Any, Any]) -> bool:
    """True when a session's data still stands for `owner`: the same user (or still none), and for a user,
    as Django's own `get_user` judges it: one still allowed to sign in, whose password is the one the
    session signed in with (a password change elsewhere ends the other sessions)."""
    expected = str(owner.user_id) if owner.user_id is not None else None
    if data.get(SESSION_KEY) != expected:
        return False
    if owner.user_id is None:
        return True
    user, backend_path = users.get(owner.user_id), data.get(BACKEND_SESSION_KEY)
    if user is None or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return False
    can_sign_in = getattr(load_backend(backend_path), "user_can_authenticate", None)
    if can_sign_in is not None and not can_sign_in(user):
        return False
    signed_with = data.get(HASH_SESSION_KEY) or ""
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return bool(signed_with) and any(constant_time_compare(signed_with, one) for one in hashes)


def _users_get(user_ids: set[Any]) -> dict[Any, Any]:
    if not user_ids:
        return {}
    return {user.pk: user for user in get_user_model()._default_manager.filter(pk__in=user_ids)}


# Session keys read per query by the sweep of open sockets' sessions.
SESSIONS_PER_QUERY = 500


def owners_whose_session_ended(*, owners: list[Owner]) -> list[Owner]:
    """Of these owners (each with a browser session), those whose session no longer stands for them (see
    `owner_still_valid`). A database-backed session store is read once per SESSIONS_PER_QUERY keys (and
    their users once); another store, one session at a time."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store, "get_model_class"):
        return [owner for owner in owners if not _session_holds(owner)]
    model, decoder = store.get_model_class(), store()
    ended: list[Owner] = []
    for start in range(0, len(owners), SESSIONS_PER_QUERY):
        batch = owners[start : start + SESSIONS_PER_QUERY]
        standing = dict(
            model.objects.filter(
                session_key__in={owner.session_key for owner in batch}, expire_date__gt=timezone.now()
            ).values_list("session_key", "session_data")
        )
        users = _users_get({owner.user_id for owner in batch} - {None})
        ended += [
            owner
            for owner in batch
            if owner.session_key not in standing
            or not _session_data_holds(owner, decoder.decode(standing[owner.session_key]), users)
        ]
    return ended


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """A conversation as a socket names it: its owner's namespace and its session id."""

    owner_key: str
    session_id: str

    @property
    def room_key(self) -> str:
        return f"{self.owner_key}/{self.session_id}"
