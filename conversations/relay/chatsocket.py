"""One open client socket as the relay sees it: who is on it, what it holds, and how frames reach it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings

from .. import protocol
from ..exceptions import InternalError
from ..owners import ConversationRef, Owner
from .backlog import SendBacklog
from .live import Send

if TYPE_CHECKING:
    from .instance import Instance

logger = logging.getLogger(__name__)

# The close code of a socket whose send failed: the client reconnects and resumes from the history.
SEND_FAILED_CLOSE_CODE = 1011
# The close code of a socket whose client stopped reading (more than CHAT_MAX_UNSENT_BYTES wait for it).
NOT_READING_CLOSE_CODE = 4408


class SocketGone(Exception):
    """A send found the socket closed by this server: its client left more than CHAT_MAX_UNSENT_BYTES
    unread, or the send failed."""


@dataclass(eq=False, slots=True)
class ChatSocket:
    """One open client socket: who is on it, its conversation, and what it holds (a counted slot, a place
    in its conversation's room), so that closing it releases exactly that, once."""

    owner: Owner
    ref: ConversationRef
    path_kind: str  # owners.PAGE_SOCKET or owners.API_SOCKET: which endpoint it came through
    client_address: str  # the client's IP (Daphne takes it from the proxy's X-Forwarded-For)
    raw_send: Send
    raw_close: Callable[..., Awaitable[None]]
    instance: Instance
    socket_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    backlog: SendBacklog = field(default_factory=SendBacklog)
    admitted: bool = False
    joined: bool = False
    open: bool = True

    async def send(self, text: str) -> None:
        """Send one serialised frame. A frame over CHAT_MAX_SERVER_FRAME_BYTES would close the socket in
        the server's transport, so it is replaced by an `internal_error` frame; a send that fails, or finds
        the client not reading, closes the socket (its client reconnects and resumes) and raises."""
        limit = settings.CHAT_MAX_SERVER_FRAME_BYTES
        if len(text) * 4 > limit and len(text.encode()) > limit:
            logger.error("frame too large to send", extra={"bytes": len(text.encode()), "limit": limit})
            text = protocol.dumps(protocol.error_frame_of(InternalError("A frame was too large to send.")))
        unread = self.backlog.unread()
        if unread > settings.CHAT_MAX_UNSENT_BYTES:
            logger.warning("closing a socket whose client does not read", extra={"unread": unread})
            await self.close(NOT_READING_CLOSE_CODE)
            self.backlog.abort()  # a closing handshake would wait behind the unread bytes
            raise SocketGone
        try:
            await self.raw_send(text)
        except Exception as exc:
            await self.close(SEND_FAILED_CLOSE_CODE)
            raise SocketGone from exc

    async def close(self, code: int) -> None:
        """Close the socket from the server's side (once)."""
        if not self.open:
            return
        self.open = False
        try:
            await self.raw_close(code=code)
        except Exception:  # already gone: nothing more to close
            logger.debug("socket close failed", exc_info=True)
