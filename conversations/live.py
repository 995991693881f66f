"""Replies in flight in this process and the sockets listening to each conversation.

Everything here runs on the event loop with no awaits between reading and changing state, so a
socket that joins mid-reply gets the text so far and then exactly the chunks that follow it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .owners import ConversationRef

logger = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class LiveReply:
    """A reply in flight as this process knows it: its text so far and the task that feeds it.

    `owned` replies are streamed from upstream by this process; the others are followed from the reply
    log that another instance writes (`loaded` is set once its backlog was read).
    """

    message_id: int
    model: str
    owned: bool = True
    parts: list[str] = field(default_factory=list)
    length: int = 0
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
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
    if not room.subscribers and room.reply is None and _rooms.get(room.ref.room_key) is room:
        del _rooms[room.ref.room_key]


def rooms_listening() -> list[ConversationRoom]:
    """Every room with a socket on this process."""
    return [room for room in _rooms.values() if room.subscribers]


def owned_replies() -> list[tuple[ConversationRoom, LiveReply]]:
    """Every reply this process streams from upstream, with its room."""
    return [(room, room.reply) for room in _rooms.values() if room.reply is not None and room.reply.owned]
