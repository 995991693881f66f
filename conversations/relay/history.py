"""What a socket is shown of a conversation: its stored history and its reply in flight, whichever
instance streams it.

A socket joining a conversation whose reply streams gets the text so far in its `history` frame and
then exactly the chunks after it: this process's own reply, or another instance's, followed from its
log. A reply streaming with no server left is stored as lost, and every socket here is told.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings

from .. import protocol
from ..chat import replies, selectors
from ..models import Message
from ..owners import ConversationRef
from . import live
from .backends.replylog import LoggedReply, ReplyLogUnreadable
from .dbcall import db_call
from .following import reply_follow
from .instance import Instance

logger = logging.getLogger(__name__)

# A joining socket waits at most this long for a followed reply's backlog before it gets its history.
FOLLOW_LOAD_TIMEOUT = 3.0


async def history_broadcast(instance: Instance, ref: ConversationRef) -> None:
    """Send every socket of a conversation on this process the `history` frame."""
    history, room = await history_read(instance, ref)
    await room.broadcast(history_frame(ref, history, room.reply))
    instance.rooms.release(room)  # read for a room nobody listens to any more, it is not kept


async def history_read(
    instance: Instance, ref: ConversationRef
) -> tuple[dict[str, Any], live.ConversationRoom]:
    """The stored history and the conversation's room, whose reply in flight (if any, followed from
    another instance when it streams there) tells the same story as the history."""
    for _ in range(3):
        history = await db_call(selectors.conversation_history)(ref=ref)
        room = instance.rooms.get(ref)
        if room.reply is None:
            await streaming_elsewhere_find(instance, room, history)
        if _history_matches_live(history, room.reply):
            break  # else a reply started or ended during the read: read once more
    return history, room


def history_frame(ref: ConversationRef, history: dict[str, Any], reply: live.LiveReply | None) -> str:
    """The `history` frame: the stored messages and, for a reply in flight, the text and reasoning shown
    so far.

    The frame stays under CHAT_MAX_SERVER_FRAME_BYTES: a live text or reasoning too long for it is sent
    cut, with `offset` (`reasoning_offset`) where the cut ends (the frames that follow start later, so
    the client asks for a resync of the rest), and the oldest messages make room for it (`has_more`).
    """
    if reply is not None:
        # At most 6 bytes a character in JSON: the text twice and the reasoning once fit the budget.
        budget = selectors.history_bytes_budget()
        thought = reply.reasoning_shown_text()[: budget // 30]
        text = reply.shown_text()[: budget // 15 if thought else budget // 12]
        history["streaming"] = {"message_id": reply.message_id, "content": text, "offset": len(text)}
        if thought:
            history["streaming"]["reasoning_offset"] = len(thought)
        for message in history["messages"]:
            if message["id"] == reply.message_id:
                message["content"], message["tools"] = text, list(reply.tools)
                message["reasoning"] = thought
                for cut in ("truncated", "length", "reasoning_truncated"):
                    message.pop(cut, None)
    frame = protocol.dumps(protocol.history_frame(session_id=ref.session_id, history=history))
    while len(frame.encode()) > settings.CHAT_MAX_SERVER_FRAME_BYTES and len(history["messages"]) > 1:
        history["messages"].pop(0)
        history["has_more"] = True
        frame = protocol.dumps(protocol.history_frame(session_id=ref.session_id, history=history))
    return frame


def _history_matches_live(history: dict[str, Any], reply: live.LiveReply | None) -> bool:
    """True when the stored history and this process's reply in flight tell the same story."""
    live_id = reply.message_id if reply is not None else None
    ids = {message["id"] for message in history["messages"]}
    if live_id is not None and live_id not in ids:
        return False
    return not any(
        m["status"] == Message.Status.STREAMING and m["id"] != live_id for m in history["messages"]
    )


async def streaming_elsewhere_find(
    instance: Instance, room: live.ConversationRoom, history: dict[str, Any]
) -> None:
    """When the history shows a reply streaming that this process has no task for, find out whose it is:
    a turn of this process still being stored (wait for it), another instance's (follow its log and load
    its backlog), or, in a single process, one whose server restarted (store it as lost)."""
    if not any(m["status"] == Message.Status.STREAMING for m in history["messages"]):
        return
    if room.turns_starting:
        await room.turns_settled.wait()  # a turn of ours: the history is read again once it is in place
        return
    streaming = await db_call(selectors.conversation_streaming_reply)(ref=room.ref)
    if streaming is None or room.reply is not None:
        return  # it ended, or a turn of ours took its place, meanwhile: the history is read again
    reply_id, streamed_by = streaming
    if not instance.reply_log.shared:
        # One process: no task of ours streams it, so its server (this process before a restart) died.
        await replies_lost_store(instance, [reply_id], streamed_by=streamed_by)
        return
    model = next((m["model"] for m in history["messages"] if m["id"] == reply_id), "")
    reply = follow_start(instance, room, reply_id, model)
    try:
        async with asyncio.timeout(FOLLOW_LOAD_TIMEOUT):
            await reply.loaded.wait()
    except TimeoutError:
        logger.warning("reply log backlog not loaded in time", extra={"message_id": reply.message_id})


def follow_start(
    instance: Instance, room: live.ConversationRoom, reply_id: int, model: str
) -> live.LiveReply:
    """Start following another instance's reply in this room (once)."""
    if room.reply is not None and room.reply.message_id == reply_id:
        return room.reply
    assert instance.reply_log.shared, "only a shared reply log can be followed"
    reply = room.reply = live.LiveReply(message_id=reply_id, model=model, local=False)
    reply.task = instance.reply_task_start(
        reply_follow(room=room, reply=reply, instance=instance), name=f"follow-{reply_id}"
    )
    return reply


async def replies_lost_store(
    instance: Instance, reply_ids: list[int], *, streamed_by: str | None = None
) -> None:
    """Store replies whose server died as lost (`server_lost`), with all the text their log shows any
    client, then end them on every socket: through the log elsewhere, from the history here.

    Without `streamed_by`, only replies whose lease lapsed are touched (see replies.reply_lost_store).
    """
    for reply_id in reply_ids:
        try:
            shown = await instance.reply_log.fenced_shown(reply_id)  # its writer adds nothing from here
        except ReplyLogUnreadable:
            logger.warning("reply log unreadable; storing the last saved text", exc_info=True)
            shown = LoggedReply()
        stored = await db_call(replies.reply_lost_store)(
            reply_id=reply_id,
            shown_text=shown.text,
            shown_reasoning=shown.reasoning,
            streamed_by=streamed_by,
        )
        if stored is None:  # not lost after all: its writer renewed the lease in time
            await instance.reply_log.unfence(reply_id)
            continue
        logger.warning(
            "reply lost its server",
            extra={"session_id": stored.conversation.session_id, "message_id": reply_id},
        )
        instance.reply_log.end(reply_id, protocol.dumps(selectors.reply_end_frame(stored, reply_id)))
        ref = ConversationRef(stored.conversation.owner_key, stored.conversation.session_id)
        room = instance.rooms.find(ref)
        if room is not None and room.reply is None and room.subscribers and not instance.reply_log.shared:
            await history_broadcast(instance, room.ref)
