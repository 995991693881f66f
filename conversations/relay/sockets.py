"""Sockets on conversations: admit one, join it to its conversation's room with the `history` frame,
send it histories again, and let it go.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from .. import metrics, protocol
from ..chat import selectors
from ..exceptions import TooManySockets
from ..logs import request_id_set
from ..owners import ConversationRef, Owner, socket_refusal
from . import live
from .backlog import send_backlog_watch
from .chatsocket import ChatSocket
from .dbcall import db_call
from .history import history_frame, history_read
from .instance import instance_get

logger = logging.getLogger(__name__)

TOO_MANY_SOCKETS_CLOSE_CODE = 4429


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
    instance.by_session.add(socket)
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
        instance.by_session.discard(socket)
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
    history, room = await history_read(socket.instance, socket.ref)
    # No await between the snapshot of the live reply and the subscription: no gap, no duplicate.
    frame = history_frame(socket.ref, history, room.reply)
    room.subscribers[id(socket)] = socket.send
    await socket.send(frame)


async def history_send(socket: ChatSocket) -> None:
    """Send a subscribed socket the `history` frame again, exactly as a join would."""
    history, room = await history_read(socket.instance, socket.ref)
    await socket.send(history_frame(socket.ref, history, room.reply))


async def history_page_send(socket: ChatSocket, *, before: int) -> None:
    """Send the page of the active branch before message `before` to this socket only."""
    page = await db_call(selectors.conversation_history_page)(ref=socket.ref, before=before)
    await socket.send(protocol.dumps(protocol.history_page_frame(before=before, page=page)))
