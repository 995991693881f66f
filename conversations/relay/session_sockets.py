"""The open sockets of this instance by the browser session they came with, so that a session's end
reaches exactly its sockets."""

from __future__ import annotations

from collections.abc import Iterator

from ..owners import Owner, session_key_digest
from .chatsocket import ChatSocket


class SocketsBySession:
    """Open sockets by the digest of their browser session's key (sockets without a session are not kept:
    they have none to lose). The digest, not the key, names a session in events between instances."""

    def __init__(self) -> None:
        self.next_sweep = 0.0  # the event loop's time from which the next sweep of sessions may run
        self._sockets: dict[str, dict[str, ChatSocket]] = {}
        self._digests: dict[str, str] = {}  # socket id -> its session's digest

    def add(self, socket: ChatSocket) -> None:
        if not socket.owner.session_key:
            return
        digest = session_key_digest(socket.owner.session_key)
        self._digests[socket.socket_id] = digest
        self._sockets.setdefault(digest, {})[socket.socket_id] = socket

    def discard(self, socket: ChatSocket) -> None:
        digest = self._digests.pop(socket.socket_id, None)
        if digest is None:
            return
        sockets = self._sockets.get(digest, {})
        sockets.pop(socket.socket_id, None)
        if not sockets:
            self._sockets.pop(digest, None)

    def of(self, digest: str) -> list[ChatSocket]:
        """The open sockets of the session with this digest."""
        return list(self._sockets.get(digest, {}).values())

    def owners(self) -> Iterator[tuple[Owner, list[ChatSocket]]]:
        """Each distinct owner (a session, with its user or none) with its open sockets."""
        by_owner: dict[Owner, list[ChatSocket]] = {}
        for sockets in self._sockets.values():
            for socket in sockets.values():
                by_owner.setdefault(socket.owner, []).append(socket)
        yield from by_owner.items()
