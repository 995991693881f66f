"""Replies in flight in this process and the sockets listening to each conversation.

Everything here runs on the event loop with no awaits between reading and changing state, so a
socket that joins mid-reply gets the text so far and then exactly the chunks that follow it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from . import protocol
from .backlog import SendBacklog
from .exceptions import InternalError
from .owners import ConversationRef, Owner

logger = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]

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


@dataclass(slots=True)
class LiveReply:
    """A reply in flight as this process knows it: its text so far and the task that feeds it.

    `owned` replies are streamed from upstream by this process; the others are followed from the reply
    log that another instance writes (`loaded` is set once its backlog was read). An owned reply may
    show text only until `lease_deadline` (loop time), within the lease it last renewed: past it, it
    must renew first, so an instance that froze never shows text after another stored the reply as lost.
    """

    message_id: int
    model: str
    owned: bool = True
    lease_deadline: float = 0.0
    parts: list[str] = field(default_factory=list)
    length: int = 0
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    ending: bool = False  # its end is being stored
    tools: list[dict[str, Any]] = field(default_factory=list)  # its tool activity so far, for joiners

    def append(self, text: str) -> int:
        """Add text to the reply; return the offset it starts at."""
        offset = self.length
        self.parts.append(text)
        self.length += len(text)
        return offset

    def text(self) -> str:
        """The whole text so far (joined once, then kept joined)."""
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""


@dataclass(slots=True)
class ConversationRoom:
    """The sockets of one conversation on this process, and its reply in flight if any."""

    ref: ConversationRef
    subscribers: dict[int, Send] = field(default_factory=dict)
    reply: LiveReply | None = None
    # Turns of this process being stored right now: their reply row may be committed before `reply` is
    # set, and a socket joining then must wait for it rather than take it for another instance's.
    turns_starting: int = 0
    turns_settled: asyncio.Event = field(default_factory=asyncio.Event)

    def turn_reserve(self) -> None:
        self.turns_starting += 1
        self.turns_settled.clear()

    def turn_settle(self) -> None:
        self.turns_starting -= 1
        if not self.turns_starting:
            self.turns_settled.set()

    async def broadcast(self, text: str) -> None:
        """Send one serialised frame to every socket; a socket that fails is dropped, not fatal."""
        for key, send in list(self.subscribers.items()):
            try:
                await send(text)
            except Exception:  # a dead socket must never stop the reply for the others
                logger.warning(
                    "dropping subscriber after a failed send", extra={"session_id": self.ref.session_id}
                )
                self.subscribers.pop(key, None)


_rooms: dict[str, ConversationRoom] = {}


def room_get(ref: ConversationRef) -> ConversationRoom:
    """Return the room of a conversation, creating it if needed."""
    room = _rooms.get(ref.room_key)
    if room is None:
        room = _rooms[ref.room_key] = ConversationRoom(ref=ref)
    return room


def room_find(ref: ConversationRef) -> ConversationRoom | None:
    return _rooms.get(ref.room_key)


def room_find_key(room_key: str) -> ConversationRoom | None:
    """The room of a conversation named by its `ConversationRef.room_key` (as events carry it)."""
    return _rooms.get(room_key)


def room_release(room: ConversationRoom) -> None:
    """Forget a room once nobody listens and nothing streams."""
    if (
        not room.subscribers
        and room.reply is None
        and not room.turns_starting
        and _rooms.get(room.ref.room_key) is room
    ):
        del _rooms[room.ref.room_key]


def rooms_listening() -> list[ConversationRoom]:
    """Every room with a socket on this process."""
    return [room for room in _rooms.values() if room.subscribers]


def owned_replies() -> list[tuple[ConversationRoom, LiveReply]]:
    """Every reply this process streams from upstream, with its room."""
    return [(room, room.reply) for room in _rooms.values() if room.reply is not None and room.reply.owned]
