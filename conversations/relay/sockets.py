"""Sockets on conversations: admit one, join it to its conversation's room with the `history` frame,
send histories again, and let it go.

A socket joining a conversation whose reply streams gets the text so far in its `history` frame and
then exactly the chunks after it, whichever instance streams the reply: this process's own reply, or
another instance's, followed from its log.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from .. import metrics, protocol, replies, selectors
from ..exceptions import TooManySockets
from ..logs import request_id_set
from ..models import Message
from ..owners import ConversationRef, Owner, socket_refusal
from . import live
from .backlog import send_backlog_watch
from .chatsocket import ChatSocket
from .dbcall import db_call
from .following import reply_follow
from .instance import Instance, instance_get
from .replylog import ReplyLogUnreadable

logger = logging.getLogger(__name__)

TOO_MANY_SOCKETS_CLOSE_CODE = 4429
# A joining socket waits at most this long for a followed reply's backlog before it gets its history.
FOLLOW_LOAD_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class SocketRefusal:
    """Why a socket may not open: the close code, the refusal's metrics label, and a frame saying why."""

    close_code: int
    code: str
    frame: str = ""


async def socket_open(
    scope: dict[str, Any], *, send: live.Send, close: Any, transport_send: Any
) -> ChatSocket | SocketRefusal:
    """Admit an accepted socket and join it to its conversation (it gets the `history` frame); return
    why it is refused instead. A refused socket, or one whose opening failed, holds nothing; whatever an
    open one comes to hold, `socket_close` releases.

    `send` and `close` are the consumer's; `transport_send` is the ASGI send, whose connection tells
    how much the client left unread.
    """
    owner = Owner.from_scope(scope)
    route = scope["url_route"]["kwargs"]
    refused_with = socket_refusal(owner, route["path_kind"])
    if refused_with is not None:
        return _refused(SocketRefusal(refused_with, "login_required"))  # no frame of data before it
    instance = await instance_get()
    socket = ChatSocket(
        owner=owner,
        ref=ConversationRef(owner.key, route["session_id"]),
        path_kind=route["path_kind"],
        client_address=(scope.get("client") or ("",))[0] or "",
        raw_send=send,
        raw_close=close,
        instance=instance,
        backlog=send_backlog_watch(transport_send),
    )
    if not await instance.socket_counter.admit(owner_key=owner.key, socket_id=socket.socket_id):
        limit = settings.CHAT_MAX_SOCKETS_PER_OWNER
        message = f"At most {limit} open chat sockets per user; close a tab and retry."
        frame = protocol.dumps(protocol.error_frame_of(TooManySockets(message)))
        return _refused(SocketRefusal(TOO_MANY_SOCKETS_CLOSE_CODE, "too_many_sockets", frame))
    socket.admitted = True
    instance.sockets[socket.socket_id] = owner.key
    metrics.OPEN_SOCKETS.inc()
    request_id_set(f"ws-{socket.socket_id[:12]}")  # this socket's log lines, and its replies', carry it
    socket.joined = True
    try:
        await conversation_join(socket)
    except BaseException:
        await socket_close(socket)  # it never reached the consumer: it holds nothing after this
        raise
    return socket


def _refused(refusal: SocketRefusal) -> SocketRefusal:
    metrics.REFUSALS.labels(refusal.code).inc()
    return refusal


async def socket_close(socket: ChatSocket) -> None:
    """Release what an open socket holds (its room place, its counted slot); safe to call twice."""
    instance = socket.instance
    if socket.joined:
        socket.joined = False
        room = instance.rooms.find(socket.ref)
        if room is not None:  # its reply in flight, if any, goes on
            room.subscribers.pop(id(socket), None)
            instance.rooms.release(room)
    if socket.admitted:
        socket.admitted = False
        instance.sockets.pop(socket.socket_id, None)
        metrics.OPEN_SOCKETS.dec()
        if not _loop_running():
            return  # a consumer closed after its event loop ended (tests): its count expires unrenewed
        await instance.socket_counter.release(owner_key=socket.owner.key, socket_id=socket.socket_id)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def conversation_join(socket: ChatSocket) -> None:
    """Subscribe a socket to its conversation and send it the `history` frame.

    The frame carries the reply in flight, if any, with its text so far (`streaming`); the socket then
    receives exactly the chunks after it, whichever instance streams the reply.
    """
    history, room = await _history_read(socket.instance, socket.ref)
    # No await between the snapshot of the live reply and the subscription: no gap, no duplicate.
    frame = history_frame(socket.ref, history, room.reply)
    room.subscribers[id(socket)] = socket.send
    await socket.send(frame)


async def history_send(socket: ChatSocket) -> None:
    """Send a subscribed socket the `history` frame again, exactly as a join would."""
    history, room = await _history_read(socket.instance, socket.ref)
    await socket.send(history_frame(socket.ref, history, room.reply))


async def history_page_send(socket: ChatSocket, *, before: int) -> None:
    """Send the page of the active branch before message `before` to this socket only."""
    page = await db_call(selectors.conversation_history_page)(ref=socket.ref, before=before)
    await socket.send(protocol.dumps({"type": "history_page", "before": before, **page}))


async def history_broadcast(instance: Instance, ref: ConversationRef) -> None:
    """Send every socket of a conversation on this process the `history` frame."""
    history, room = await _history_read(instance, ref)
    await room.broadcast(history_frame(ref, history, room.reply))


async def _history_read(
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
    """The `history` frame: the stored messages and, for a reply in flight, its live text so far.

    The frame stays under CHAT_MAX_SERVER_FRAME_BYTES: a live text too long for it is sent cut, with
    `offset` where the cut ends (the chunks that follow start later, so the client asks for a resync of
    the rest), and the oldest messages make room for it (`has_more`).
    """
    if reply is not None:
        text = reply.text()[: selectors.history_bytes_budget() // 12]
        history["streaming"] = {"message_id": reply.message_id, "content": text, "offset": len(text)}
        for message in history["messages"]:
            if message["id"] == reply.message_id:
                message["content"], message["tools"] = text, list(reply.tools)
                message.pop("truncated", None)
                message.pop("length", None)
    frame = protocol.dumps({"type": "history", "session_id": ref.session_id, **history})
    while len(frame.encode()) > settings.CHAT_MAX_SERVER_FRAME_BYTES and len(history["messages"]) > 1:
        history["messages"].pop(0)
        history["has_more"] = True
        frame = protocol.dumps({"type": "history", "session_id": ref.session_id, **history})
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
            shown = await instance.reply_log.shown_text(reply_id)
        except ReplyLogUnreadable:
            logger.warning("reply log unreadable; storing the last saved text", exc_info=True)
            shown = ""
        stored = await db_call(replies.reply_lost_store)(
            reply_id=reply_id, shown_text=shown, streamed_by=streamed_by
        )
        if stored is None:
            continue
        logger.warning(
            "reply lost its server",
            extra={"session_id": stored.conversation.session_id, "message_id": reply_id},
        )
        instance.reply_log.end(reply_id, protocol.dumps(protocol.end_frame_of_row(stored, reply_id)))
        ref = ConversationRef(stored.conversation.owner_key, stored.conversation.session_id)
        room = instance.rooms.find(ref)
        if room is not None and room.reply is None and room.subscribers and not instance.reply_log.shared:
            await history_broadcast(instance, room.ref)
