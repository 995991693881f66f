"""Turns from a socket: store one and start its reply, stop a reply, resend a reply's text, switch a
branch.

A reply belongs to the server, not to the socket that asked for it: closing the socket cancels nothing.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError

from .. import protocol
from ..chat import feedback, selectors, upkeep
from ..chat.turns import EDIT, REGENERATE, SEND, DuplicateSend, ReplyLapsed, Turn, TurnRequest
from ..exceptions import Busy, NoSuchReply, NotConfigured, Unavailable
from ..models import Message
from . import live
from .backends.eventbus import EventNotSent
from .chatsocket import ChatSocket
from .dbcall import db_call
from .fanout import frame_fan_out
from .history import history_broadcast, replies_lost_store
from .instance import Instance
from .streaming import reply_stream

logger = logging.getLogger(__name__)

TurnFrame = protocol.SendFrame | protocol.RegenerateFrame | protocol.EditFrame


async def turn_start(socket: ChatSocket, frame: TurnFrame) -> None:
    """Store the turn a frame asks for (a message, a regenerated reply or an edited message) and start
    its reply; a resend of a stored `client_id` starts nothing.

    The socket's session was checked for this frame (`frame_receive`): a turn after logout is never
    stored as the user's.
    """
    turn = await turn_open(
        socket.instance,
        _turn_request(socket, frame),
        anonymous_address="" if socket.owner.is_authenticated else socket.client_address,
    )
    if isinstance(turn, DuplicateSend):
        duplicate = protocol.duplicate_frame(client_id=turn.client_id, message_id=turn.message_id)
        await socket.send(protocol.dumps(duplicate))


async def turn_open(
    instance: Instance, request: TurnRequest, *, anonymous_address: str = ""
) -> Turn | DuplicateSend:
    """Store a turn and start its reply, a task of the instance; return the turn (a DuplicateSend for
    a resend of a stored `client_id`, which starts nothing).

    Every kind of turn, from a socket or the API, takes this one path: the same refusals, the same
    `start` to every subscriber of the conversation's room, the same reply task and the same
    announcement to the other instances.
    """
    ref, owner = request.ref, request.owner
    if instance.draining:
        raise Unavailable("This server is restarting; send again in a moment.")
    room = instance.rooms.get(ref)
    # With a client id, the frame may be a resend: the store decides.
    if room.reply is not None and not request.options.client_id:
        raise Busy()
    if not settings.DEDALUS_API_KEY:
        raise NotConfigured()
    await instance.limits.message_check(owner_key=owner.key, anonymous_address=anonymous_address)
    # Reserved before the write: a socket joining between the commit and the reply's registration
    # below waits for it instead of taking it for a reply of another instance.
    room.turn_reserve()
    try:
        started = asyncio.get_running_loop().time()
        turn = await _turn_store(instance, request)
        if isinstance(turn, DuplicateSend):
            return turn
        reply = room.reply = live.LiveReply(message_id=turn.reply_id, model=turn.model, prices=turn.prices)
        reply.lease_renewed(started)  # the turn's write set the lease's first expiry
        start = protocol.dumps(
            protocol.start_frame(
                message_id=turn.reply_id,
                model=turn.model,
                parent_id=turn.parent_id,
                user_message=turn.user_message,
                context_dropped=turn.context_dropped,
                agent=turn.agent,
                title=turn.title,
            )
        )
        await room.broadcast(start)
        reply.task = instance.reply_task_start(
            reply_stream(room=room, reply=reply, turn=turn, instance=instance),
            name=f"reply-{turn.reply_id}",
        )
    finally:
        room.turn_settle()
        if room.reply is not None and room.reply.local and room.reply.task is None:
            room.reply = None  # never started: its row lapses unrenewed and is stored as lost
        instance.rooms.release(room)
    # Sockets of this conversation on other instances start following the reply's log (if the event is
    # lost, they find the reply when they reconnect).
    await instance.announce(
        "reply.started", ref.room_key, reply_id=turn.reply_id, model=turn.model, start=start
    )
    return turn


async def _turn_store(instance: Instance, request: TurnRequest) -> Turn | DuplicateSend:
    """Store a turn (with the others waiting: the instance's turn writer), once more after storing as
    lost a reply whose server died in its way. A turn's write is never retried after a database failure
    (its COMMIT may have landed): the client resends."""
    try:
        try:
            return await instance.turn_writer.store(request)
        except ReplyLapsed as lapsed:
            await replies_lost_store(instance, [lapsed.reply_id])
            return await instance.turn_writer.store(request)
    except (OperationalError, InterfaceError) as exc:
        logger.warning("turn not stored: the database failed", exc_info=True)
        raise Unavailable("The database did not answer; send your message again.") from exc


def _turn_request(socket: ChatSocket, frame: TurnFrame) -> TurnRequest:
    """A frame's turn: the user message (for a send or an edit) and the reply row, streamed by this
    instance."""
    if isinstance(frame, protocol.RegenerateFrame):
        kind, content, target_id = REGENERATE, "", frame.message_id
    elif isinstance(frame, protocol.EditFrame):
        kind, content, target_id = EDIT, frame.message, frame.message_id
    else:
        kind, content, target_id = SEND, frame.message, None
    return TurnRequest(
        ref=socket.ref,
        owner=socket.owner,
        options=frame.options,
        streamed_by=socket.instance.instance_id,
        kind=kind,
        content=content,
        target_id=target_id,
    )


async def reply_stop(socket: ChatSocket) -> bool:
    """Stop the reply in flight of a conversation, on whichever instance streams it.

    Return False when nothing streams (stop is idempotent).
    """
    instance = socket.instance
    room = instance.rooms.find(socket.ref)
    reply = room.reply if room else None
    if reply is not None and reply.local:
        return reply.cancel(reason="stopped")
    streaming = await db_call(selectors.conversation_streaming_reply)(ref=socket.ref)
    if streaming is None:
        return False
    reply_id, streamed_by = streaming
    if streamed_by == instance.instance_id:
        return False  # ours, and ending right now
    try:
        await instance.publish("reply.stop", streamed_by=streamed_by, reply_id=reply_id)
    except EventNotSent as exc:
        logger.warning(
            "stop could not reach the streaming instance", extra={"message_id": reply_id}, exc_info=True
        )
        raise Unavailable("Could not reach the server writing this reply; try again.") from exc
    return True


async def reply_resend(socket: ChatSocket, *, message_id: int, offset: int, part: str = "text") -> None:
    """Send a reply's text from `offset` in bounded chunk frames, to the socket that saw a gap (with
    `part="reasoning"`, its reasoning in reasoning frames, which no end frame follows)."""
    page = settings.CHAT_RESYNC_PAGE_CHARS
    room = socket.instance.rooms.find(socket.ref)
    reasoning = part == "reasoning"
    if room is not None and room.reply is not None and room.reply.message_id == message_id:
        live_reply = room.reply
        text = live_reply.reasoning_shown_text() if reasoning else live_reply.shown_text()
        end_frame = None
    else:
        stored = await db_call(selectors.reply_stored)(reply_id=message_id)
        if stored is None or (stored.conversation.owner_key, stored.conversation.session_id) != (
            socket.ref.owner_key,
            socket.ref.session_id,
        ):
            raise NoSuchReply()
        text = stored.reasoning if reasoning else stored.content
        streaming = stored.status == Message.Status.STREAMING
        end_frame = None if streaming or reasoning else selectors.reply_end_frame(stored, message_id)
    if reasoning:
        for frame in protocol.reasoning_frames_text(
            content=text[offset:], message_id=message_id, offset=offset
        ):
            await socket.send(frame)
        return
    for start in range(offset, len(text), page):
        await socket.send(
            protocol.chunk_frame_text(content=text[start : start + page], message_id=message_id, offset=start)
        )
    if end_frame is not None:
        await socket.send(protocol.dumps(end_frame))


async def branch_switch(socket: ChatSocket, *, message_id: int) -> None:
    """Switch the active branch, then send every socket of the conversation, on every instance, the new
    `history`."""
    instance, ref = socket.instance, socket.ref
    await db_call(upkeep.branch_switch)(ref=ref, message_id=message_id)
    await history_broadcast(instance, ref)
    # If the event is lost, tabs elsewhere see the switch at their next history.
    await instance.announce("branch.switched", ref.room_key)


async def feedback_give(socket: ChatSocket, frame: protocol.FeedbackFrame) -> None:
    """Store the owner's feedback on a reply, then tell every socket of the conversation, on every
    instance, as a `feedback` frame."""
    given = await db_call(feedback.feedback_set)(
        ref=socket.ref, message_id=frame.message_id, value=frame.value, comment=frame.comment
    )
    await frame_fan_out(socket.instance, socket.ref, protocol.feedback_frame(**given))
