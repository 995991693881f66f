"""A followed reply's task: relay another instance's reply, from its log, to this process's sockets."""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from django.db import DatabaseError

from .. import protocol
from ..chat import selectors
from ..models import Message
from . import live
from .backends.replylog import LogEntry, ReplyLogUnreadable
from .dbcall import db_call
from .instance import Instance

logger = logging.getLogger(__name__)

# How long a follower waits on the log before it checks the stored row (its writer may be gone).
FOLLOW_CHECK_MS = 2000


async def reply_follow(*, room: live.ConversationRoom, reply: live.LiveReply, instance: Instance) -> None:
    """Follow another instance's reply from its log: the backlog first, then each entry as it lands.

    The follower never crosses a gap in the log (a failed write, a Redis restart): the missing text
    comes from the stored row. Its end comes from the stored row too, which the writer stores before it
    logs the end (or the instance that found the writer dead, before it logs the loss); when the log
    falls silent, the row decides whether the reply ended meanwhile.
    """
    after, delay = "0-0", 0.5
    try:
        while True:
            try:
                block = FOLLOW_CHECK_MS if reply.loaded.is_set() else None
                entries = await instance.reply_log.read(reply.message_id, after, block_ms=block)
                delay = 0.5
            except ReplyLogUnreadable:
                logger.warning("reply log read failed", extra={"message_id": reply.message_id}, exc_info=True)
                reply.loaded.set()  # joiners go on with what is known; the row check below still ends it
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
                entries = []
            for entry in entries:
                after = entry.entry_id
                if entry.kind == "end":
                    await _follow_end(room, reply, entry.frame)
                    return
                if entry.kind == "tool":
                    await room.tool_publish(reply, protocol.tool_activity_of(entry.frame), entry.frame)
                elif entry.kind == "reasoning":
                    await _follow_reasoning(room, reply, entry)
                elif entry.text and not await _follow_text(room, reply, entry):
                    return  # the row ended while the follower filled a gap
            if not reply.loaded.is_set():
                reply.loaded.set()
            elif not entries:
                stored = await _stored_or_none(reply.message_id)
                if stored is not None and stored.status != Message.Status.STREAMING:
                    await _follow_catch_up(room, reply, stored)
                    return
    finally:
        reply.loaded.set()
        instance.rooms.reply_end(room, reply)


async def _stored_or_none(reply_id: int) -> Message | None:
    """The stored reply, or None when the database cannot say right now (the follower asks again)."""
    try:
        return await db_call(selectors.reply_stored)(reply_id=reply_id)
    except DatabaseError:
        logger.warning("reply row unreadable", extra={"message_id": reply_id}, exc_info=True)
        return None


async def _follow_text(room: live.ConversationRoom, reply: live.LiveReply, entry: LogEntry) -> bool:
    """Relay one logged span of text from where this follower's text ends; return False when the reply
    ended (from its row) while a gap before the span was being filled."""
    text, offset = entry.text, entry.offset
    if offset > reply.length and not await _follow_gap_fill(room, reply, offset):
        return False
    # What this follower already has (a log read twice, or filled from the row) is not sent again.
    await room.text_publish(reply, text[reply.length - offset :])
    return True


async def _follow_reasoning(room: live.ConversationRoom, reply: live.LiveReply, entry: LogEntry) -> None:
    """Relay one logged span of reasoning from where this follower's reasoning ends. Reasoning missing
    before it comes from the stored row if it holds it by now; else the span waits for the reply's end,
    which sends the rest from the row (a follower never crosses a gap)."""
    if entry.offset > len(reply.reasoning):
        stored = await _stored_or_none(reply.message_id)
        if stored is not None:
            await room.reasoning_publish(reply, stored.reasoning[len(reply.reasoning) : entry.offset])
        if entry.offset > len(reply.reasoning):
            return
    await room.reasoning_publish(reply, entry.text[len(reply.reasoning) - entry.offset :])


async def _follow_gap_fill(room: live.ConversationRoom, reply: live.LiveReply, until: int) -> bool:
    """Fill the text missing before offset `until` from the stored row, waiting for the writer's next
    flush while the row is not there yet; return False when the row ended first (the follower then
    ended from it)."""
    logger.warning("reply log gap", extra={"message_id": reply.message_id, "at": reply.length, "next": until})
    while True:
        stored = await _stored_or_none(reply.message_id)
        if stored is not None and stored.status != Message.Status.STREAMING:
            await _follow_catch_up(room, reply, stored)
            return False
        if stored is not None and len(stored.content) >= until:
            await room.text_publish(reply, stored.content[reply.length : until])
            return True
        await asyncio.sleep(max(settings.CHAT_FLUSH_INTERVAL / 2, 0.05))


async def _follow_end(room: live.ConversationRoom, reply: live.LiveReply, logged_frame: str) -> None:
    """End a followed reply at its logged end: the text this instance missed, then the end as stored
    (the logged frame when the row cannot be read)."""
    stored = await _stored_or_none(reply.message_id)
    if stored is None or stored.status == Message.Status.STREAMING:
        await room.broadcast(logged_frame)
        return
    await _follow_catch_up(room, reply, stored)


async def _follow_catch_up(room: live.ConversationRoom, reply: live.LiveReply, stored: Message) -> None:
    """End a followed reply from its stored row: send the reasoning and text this instance missed, then
    the end."""
    await room.reasoning_publish(reply, stored.reasoning[len(reply.reasoning) :])
    await room.text_publish(reply, stored.content[reply.length :])
    await room.broadcast(protocol.dumps(selectors.reply_end_frame(stored, reply.message_id)))
