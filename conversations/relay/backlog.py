"""How much a socket's client has left unread: what waits in the server's own send buffer for it.

A client that stops reading fills the kernel's socket buffers, then Twisted's buffer of the connection,
which has no bound: past CHAT_MAX_UNSENT_BYTES the socket is closed, so one client that never reads
cannot make the server hold its replies and histories in memory without end. (Twisted's producer API
cannot tell: Daphne's HTTP channel is already the connection's producer.)
"""

from __future__ import annotations

import functools
from typing import Any


class SendBacklog:
    """The bytes waiting in one connection's send buffer (always 0 when the server is not Daphne)."""

    def __init__(self, transport: Any = None) -> None:
        self.transport = transport

    def unread(self) -> int:
        """Bytes written to the connection that the client has not taken yet, beyond the kernel's buffers."""
        transport = self.transport
        if transport is None:
            return 0
        # Twisted's FileDescriptor: `dataBuffer` from `offset` on, plus the writes not yet joined to it.
        buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
        return buffered + getattr(transport, "_tempDataLen", 0)

    def abort(self) -> None:
        """Drop the connection and what waits in its buffer at once."""
        if self.transport is not None:
            self.transport.abortConnection()


def _daphne_protocol(asgi_send: Any) -> Any:
    """The Daphne protocol behind an ASGI `send`, or None: Daphne's `send` is its reply handler bound to
    the socket's protocol, which Channels' session middleware wraps (keeping it as `real_send`)."""
    send = asgi_send
    for _ in range(4):
        if isinstance(send, functools.partial):
            return send.args[0] if send.args else None
        send = getattr(getattr(send, "__self__", None), "real_send", None)
        if send is None:
            return None
    return None


def send_backlog_watch(asgi_send: Any) -> SendBacklog:
    """A backlog watching the connection behind an ASGI `send` (under Daphne, its protocol's transport)."""
    return SendBacklog(getattr(_daphne_protocol(asgi_send), "transport", None))
