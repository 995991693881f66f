"""What is live in this process: replies in flight and each conversation's room of sockets.

Everything here runs on the event loop with no awaits between reading and changing state, so a
socket that joins mid-reply gets the text so far and then exactly the chunks that follow it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from .. import protocol
from ..costs import Prices
from ..owners import ConversationRef

logger = logging.getLogger(__name__)

# A local reply shows text for at most this share of its lease after the lease's last renewal began
# (the database set the expiry after that moment), so it stops well before anyone may judge it lost.
LEASE_SHOW_SHARE = 0.8

Send = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class LiveReply:
    """A reply in flight as this process knows it: its text so far and the task that feeds it.

    `local` replies are streamed from upstream by this process; the others are followed from the reply
    log that another instance writes (`loaded` is set once its backlog was read). A local reply may
    show text only until `lease_deadline` (loop time), within the lease it last renewed: past it, it
    must renew first, so an instance that froze never shows text after another stored the reply as lost.

    Its text is received (`length`) before it is shown (`shown`): a local reply shows text once it is
    durable (in the reply log or the database), a followed one at once (it comes from either).
    Joiners get the shown text, then the chunks after it. Its reasoning (the model's thinking, bounded
    by CHAT_MAX_REASONING_CHARS) goes the same way, with offsets of its own.
    """

    message_id: int
    model: str
    local: bool = True
    lease_deadline: float = 0.0
    parts: list[str] = field(default_factory=list)
    length: int = 0
    shown: int = 0
    unshown: list[str] = field(default_factory=list)  # the text after `shown`, in the pieces it came in
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    ending: bool = False  # its end is being stored
    tools: list[dict[str, Any]] = field(default_factory=list)  # its tool activity so far, for joiners
    served_models: list[str] = field(default_factory=list)  # the models that produced it, as they changed
    handoff_offsets: list[int] = field(default_factory=list)  # where each model after the first began
    prices: Prices | None = None  # its first model's catalog prices, to store what it cost
    reasoning: str = ""  # its reasoning received so far
    reasoning_shown: int = 0

    def append(self, text: str) -> int:
        """Add text to the reply (not shown yet); return the offset it starts at."""
        offset = self.length
        self.parts.append(text)
        self.unshown.append(text)
        self.length += len(text)
        return offset

    def show(self, until: int) -> tuple[int, str]:
        """Count the text up to offset `until` as shown; return the offset and text newly shown."""
        start = self.shown
        if until <= start:
            return start, ""
        pending = self.unshown[0] if len(self.unshown) == 1 else "".join(self.unshown)
        text, rest = pending[: until - start], pending[until - start :]
        self.unshown = [rest] if rest else []
        self.shown = until
        return start, text

    def shown_text(self) -> str:
        """The text sockets were shown so far (what a joiner gets)."""
        text = self.text()
        return text if self.shown == len(text) else text[: self.shown]

    def reasoning_append(self, text: str) -> int:
        """Add reasoning (not shown yet); return the offset it starts at."""
        offset = len(self.reasoning)
        self.reasoning += text
        return offset

    def reasoning_show(self, until: int) -> tuple[int, str]:
        """Count the reasoning up to offset `until` as shown; return the offset and reasoning newly shown."""
        start = self.reasoning_shown
        if until <= start:
            return start, ""
        self.reasoning_shown = until
        return start, self.reasoning[start:until]

    def reasoning_shown_text(self) -> str:
        return self.reasoning[: self.reasoning_shown]

    def lease_renewed(self, started: float) -> None:
        """The lease was renewed by a write that began at loop time `started`: the reply may show text
        until its share of the lease from then."""
        self.lease_deadline = started + settings.CHAT_REPLY_LEASE_SECONDS * LEASE_SHOW_SHARE

    def text(self) -> str:
        """The whole text so far (joined once, then kept joined)."""
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    def cancel(self, *, reason: str) -> bool:
        """Cancel a local reply's upstream request; it then stores its partial text as interrupted (or,
        with reason "lost", stores nothing). Return False when it is already ending."""
        if self.task is None or self.stop_reason is not None or self.task.done():
            return False
        self.stop_reason = reason
        self.task.cancel()
        return True


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

    async def text_publish(self, reply: LiveReply, text: str) -> None:
        """Add text to a followed reply and send it to every socket at once (it came from the reply log
        or the stored row: it is durable)."""
        if text:
            reply.append(text)
            await self.text_show(reply, reply.length)

    async def text_show(self, reply: LiveReply, until: int) -> None:
        """Send every socket the reply's text not shown yet, up to offset `until`, as chunk frames. The
        one step by which text reaches sockets, whether this process streams the reply or follows it."""
        offset, text = reply.show(until)
        if text:
            for frame in protocol.chunk_frames_text(content=text, message_id=reply.message_id, offset=offset):
                await self.broadcast(frame)

    async def reasoning_publish(self, reply: LiveReply, text: str) -> None:
        """Add reasoning to a followed reply and send it to every socket at once (it is durable)."""
        if text:
            reply.reasoning_append(text)
            await self.reasoning_show(reply, len(reply.reasoning))

    async def reasoning_show(self, reply: LiveReply, until: int) -> None:
        """Send every socket the reply's reasoning not shown yet, up to offset `until`, as reasoning
        frames (as `text_show` does the text)."""
        offset, text = reply.reasoning_show(until)
        if text:
            for frame in protocol.reasoning_frames_text(
                content=text, message_id=reply.message_id, offset=offset
            ):
                await self.broadcast(frame)

    async def tool_publish(self, reply: LiveReply, activity: dict[str, Any], frame: str) -> None:
        """Add tool activity to a reply and send its frame to every socket."""
        reply.tools.append(activity)
        await self.broadcast(frame)

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


class Rooms:
    """This process's conversation rooms, by `ConversationRef.room_key`; a room lives while a socket
    listens to it, a reply streams in it, or a turn is being stored in it."""

    def __init__(self) -> None:
        self._rooms: dict[str, ConversationRoom] = {}

    def get(self, ref: ConversationRef) -> ConversationRoom:
        """Return the room of a conversation, creating it if needed."""
        room = self._rooms.get(ref.room_key)
        if room is None:
            room = self._rooms[ref.room_key] = ConversationRoom(ref=ref)
        return room

    def find(self, ref: ConversationRef) -> ConversationRoom | None:
        return self._rooms.get(ref.room_key)

    def find_key(self, room_key: str) -> ConversationRoom | None:
        """The room of a conversation named by its `ConversationRef.room_key` (as events carry it)."""
        return self._rooms.get(room_key)

    def release(self, room: ConversationRoom) -> None:
        """Forget a room once nobody listens and nothing streams."""
        if (
            not room.subscribers
            and room.reply is None
            and not room.turns_starting
            and self._rooms.get(room.ref.room_key) is room
        ):
            del self._rooms[room.ref.room_key]

    def reply_end(self, room: ConversationRoom, reply: LiveReply) -> None:
        """Forget a reply that ended, unless a newer one took its place."""
        if room.reply is reply:
            room.reply = None
        self.release(room)

    def listening(self) -> list[ConversationRoom]:
        """Every room with a socket on this process."""
        return [room for room in self._rooms.values() if room.subscribers]

    def local_replies(self) -> list[LiveReply]:
        """Every reply this process streams from upstream."""
        return [room.reply for room in self._rooms.values() if room.reply is not None and room.reply.local]
