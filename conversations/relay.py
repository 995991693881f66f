"""Turn orchestration: sockets join conversations, messages start replies, replies reach every socket.

A reply belongs to the server, not to the socket that asked for it: closing the socket cancels nothing.
The instance that streams a reply from upstream (its owner) writes it to the reply log; any other
instance with a socket on that conversation follows the log; instances learn that a reply started
elsewhere, or must stop, through the instances' events (see instance.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from redis.exceptions import RedisError

from . import instance as instances
from . import live, metrics, protocol, replies, replylog, selectors, throttles, turns, upkeep
from .exceptions import Busy, NoSuchReply, NotConfigured, SessionExpired, TooManySockets, Unavailable
from .logs import request_id_set
from .models import Message
from .owners import ConversationRef, Owner, owner_still_valid, socket_refusal
from .streaming import db_call, lease_deadline_from, reply_follow, reply_run, terminal_frame_from_row

logger = logging.getLogger(__name__)

TOO_MANY_SOCKETS_CLOSE_CODE = 4429

# This process's open sockets (socket id -> owner key), whose per-owner count the heartbeat renews.
sockets_open: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class SocketRefusal:
    """Why a socket may not open: the close code, the refusal's metrics label, and a frame saying why."""

    close_code: int
    code: str
    frame: str = ""


async def socket_open(socket: live.ChatSocket) -> SocketRefusal | None:
    """Admit an accepted socket and join it to its conversation (it gets the `history` frame); return
    why it is refused instead, holding nothing. Whatever it comes to hold, `socket_close` releases."""
    refused_with = socket_refusal(socket.owner, socket.path_kind)
    if refused_with is not None:
        return SocketRefusal(refused_with, "login_required")  # no frame of data before it
    instance = await instances.instance_get()
    if not await throttles.socket_admit(
        instance=instance, owner_key=socket.owner.key, socket_id=socket.socket_id
    ):
        limit = settings.CHAT_MAX_SOCKETS_PER_OWNER
        message = f"At most {limit} open chat sockets per user; close a tab and retry."
        frame = protocol.dumps(protocol.error_frame_of(TooManySockets(message)))
        return SocketRefusal(TOO_MANY_SOCKETS_CLOSE_CODE, "too_many_sockets", frame)
    socket.admitted = True
    sockets_open[socket.socket_id] = socket.owner.key
    metrics.OPEN_SOCKETS.inc()
    request_id_set(f"ws-{socket.socket_id[:12]}")  # this socket's log lines, and its replies', carry it
    socket.joined = True
    await conversation_join(ref=socket.ref, key=id(socket), send=socket.send)
    return None


async def socket_close(socket: live.ChatSocket) -> None:
    """Release what an open socket holds (its room place, its counted slot); safe to call twice."""
    if socket.joined:
        socket.joined = False
        conversation_leave(ref=socket.ref, key=id(socket))
    if socket.admitted:
        socket.admitted = False
        sockets_open.pop(socket.socket_id, None)
        metrics.OPEN_SOCKETS.dec()
        if not _loop_running():
            return  # a consumer closed after its event loop ended (tests): its count expires unrenewed
        instance = await instances.instance_get()
        await throttles.socket_release(
            instance=instance, owner_key=socket.owner.key, socket_id=socket.socket_id
        )


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# Reply tasks (owned and followed) are referenced here so the event loop never collects one mid-reply.
_reply_tasks: set[asyncio.Task[None]] = set()

# Stores a turn, given the instance that will stream its reply (`streamed_by`): see _turn_begin_call.
TurnBegin = Callable[..., turns.Turn | turns.DuplicateSend]

# A joining socket waits at most this long for a followed reply's backlog before it gets its history.
FOLLOW_LOAD_TIMEOUT = 3.0


def _task_keep(task: asyncio.Task[None]) -> None:
    _reply_tasks.add(task)
    task.add_done_callback(_reply_tasks.discard)


async def conversation_join(*, ref: ConversationRef, key: int, send: live.Send) -> None:
    """Subscribe a socket to a conversation and send it the `history` frame.

    The frame carries the reply in flight, if any, with its text so far (`streaming`); the socket then
    receives exactly the chunks after it, whichever instance streams the reply.
    """
    history, room = await _history_read(ref)
    # No await between the snapshot of the live reply and the subscription: no gap, no duplicate.
    frame = _history_frame(ref, history, room.reply)
    room.subscribers[key] = send
    await send(frame)


async def history_send(*, ref: ConversationRef, send: live.Send) -> None:
    """Send a subscribed socket the `history` frame again, exactly as a join would."""
    history, room = await _history_read(ref)
    await send(_history_frame(ref, history, room.reply))


async def _history_read(ref: ConversationRef) -> tuple[dict[str, Any], live.ConversationRoom]:
    """The stored history and the conversation's room, whose reply in flight (if any, followed from
    another instance when it streams there) tells the same story as the history."""
    instance = await instances.instance_get()
    for _ in range(3):
        history = await db_call(selectors.conversation_history)(ref=ref)
        room = live.room_get(ref)
        if room.reply is None:
            await _streaming_elsewhere_find(room, history, instance)
        if _history_matches_live(history, room.reply):
            break  # else a reply started or ended during the read: read once more
    return history, room


def _history_frame(ref: ConversationRef, history: dict[str, Any], reply: live.LiveReply | None) -> str:
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


async def _streaming_elsewhere_find(
    room: live.ConversationRoom, history: dict[str, Any], instance: instances.Instance
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
    reply_id, lease_owner = streaming
    if instance.redis is None:
        # One process: no task of ours streams it, so its server (this process before a restart) died.
        await replies_lost_store(instance, [reply_id], lease_owner=lease_owner)
        return
    model = next((m["model"] for m in history["messages"] if m["id"] == reply_id), "")
    reply = _follow_start(room, reply_id, model, instance)
    try:
        async with asyncio.timeout(FOLLOW_LOAD_TIMEOUT):
            await reply.loaded.wait()
    except TimeoutError:
        logger.warning("reply log backlog not loaded in time", extra={"message_id": reply.message_id})


async def replies_lost_store(
    instance: instances.Instance, reply_ids: list[int], *, lease_owner: str | None = None
) -> None:
    """Store replies whose server died as lost (`server_lost`), with all the text their log shows any
    client, then end them on every socket: through the log elsewhere, from the history here.

    Without `lease_owner`, only replies whose lease lapsed are touched (see replies.reply_lost_store).
    """
    for reply_id in reply_ids:
        shown = ""
        if instance.redis is not None:
            try:
                shown = await replylog.log_text(instance.redis, reply_id)
            except (RedisError, OSError):
                logger.warning("reply log unreadable; storing the last saved text", exc_info=True)
        stored = await db_call(replies.reply_lost_store)(
            reply_id=reply_id, shown_text=shown, streamed_by=lease_owner
        )
        if stored is None:
            continue
        logger.warning(
            "reply lost its server",
            extra={"session_id": stored.conversation.session_id, "message_id": reply_id},
        )
        if instance.log_writer is not None:
            instance.log_writer.end(reply_id, protocol.dumps(terminal_frame_from_row(stored, reply_id)))
        room = live.room_find(ConversationRef(stored.conversation.owner_key, stored.conversation.session_id))
        if room is not None and room.reply is None and room.subscribers and instance.redis is None:
            await _history_broadcast(room.ref)


def _follow_start(
    room: live.ConversationRoom, reply_id: int, model: str, instance: instances.Instance
) -> live.LiveReply:
    """Start following another instance's reply in this room (once)."""
    if room.reply is not None and room.reply.message_id == reply_id:
        return room.reply
    reply = room.reply = live.LiveReply(message_id=reply_id, model=model, owned=False)
    reply.task = asyncio.create_task(
        reply_follow(room=room, reply=reply, instance=instance), name=f"follow-{reply_id}"
    )
    _task_keep(reply.task)
    return reply


def _history_matches_live(history: dict[str, Any], reply: live.LiveReply | None) -> bool:
    """True when the stored history and this process's reply in flight tell the same story."""
    live_id = reply.message_id if reply is not None else None
    ids = {message["id"] for message in history["messages"]}
    if live_id is not None and live_id not in ids:
        return False
    return not any(
        m["status"] == Message.Status.STREAMING and m["id"] != live_id for m in history["messages"]
    )


def conversation_leave(*, ref: ConversationRef, key: int) -> None:
    """Unsubscribe a socket. Its reply in flight, if any, goes on."""
    room = live.room_find(ref)
    if room is not None:
        room.subscribers.pop(key, None)
        live.room_release(room)


async def client_frame_handle(*, socket: live.ChatSocket, frame: protocol.ClientFrame) -> None:
    """Act on one client frame. Raise ChatError for the client when it cannot be done."""
    ref, owner, send = socket.ref, socket.owner, socket.send
    if isinstance(frame, protocol.StopFrame):
        await reply_stop(ref=ref)
    elif isinstance(frame, protocol.ResyncFrame):
        await reply_resend(ref=ref, message_id=frame.message_id, offset=frame.offset, send=send)
    elif isinstance(frame, protocol.HistoryFrame):
        if frame.before is None:
            await history_send(ref=ref, send=send)
        else:
            await history_page_send(ref=ref, before=frame.before, send=send)
    elif isinstance(frame, protocol.SwitchFrame):
        await branch_switch(ref=ref, message_id=frame.message_id)
    else:
        if not await owner_still_valid(owner):
            raise SessionExpired()  # the socket closes: a turn after logout would be stored as the user's
        begin = _turn_begin_call(ref=ref, owner=owner, frame=frame)
        await turn_start(
            ref=ref,
            owner=owner,
            client_id=frame.client_id,
            begin=begin,
            send=send,
            anonymous_address="" if owner.is_authenticated else socket.client_address,
        )


async def history_page_send(*, ref: ConversationRef, before: int, send: live.Send) -> None:
    """Send the page of the active branch before message `before` to this socket only."""
    page = await db_call(selectors.conversation_history_page)(ref=ref, before=before)
    await send(protocol.dumps({"type": "history_page", "before": before, **page}))


async def branch_switch(*, ref: ConversationRef, message_id: int) -> None:
    """Switch the active branch, then send every socket of the conversation, on every instance, the new
    `history`."""
    await db_call(upkeep.branch_switch)(ref=ref, message_id=message_id)
    await _history_broadcast(ref)
    # If the event is lost, tabs elsewhere see the switch at their next history.
    await _room_event_announce(await instances.instance_get(), ref, "branch.switched")


async def _room_event_announce(
    instance: instances.Instance, ref: ConversationRef, kind: str, **fields: Any
) -> None:
    """Tell the other instances (if any) about something that happened in a conversation; a Redis
    failure is logged, not raised: the conversation itself is stored and goes on."""
    if instance.redis is None:
        return
    event = {"type": kind, "origin": instance.instance_id, "room": ref.room_key, **fields}
    try:
        await instances.event_publish(instance, event)
    except (RedisError, OSError):
        logger.warning("%s not announced", kind, extra={"session_id": ref.session_id}, exc_info=True)


async def _room_of_event(event: dict[str, Any]) -> live.ConversationRoom | None:
    """The room an event from another instance is about, when this instance has sockets in it."""
    instance = await instances.instance_get()
    if event["origin"] == instance.instance_id:
        return None
    room = live.room_find_key(event["room"])
    return room if room is not None and room.subscribers else None


async def _history_broadcast(ref: ConversationRef) -> None:
    history, room = await _history_read(ref)
    await room.broadcast(_history_frame(ref, history, room.reply))


async def _on_branch_switched(event: dict[str, Any]) -> None:
    """Another instance switched a conversation's branch: its sockets here get the new history."""
    room = await _room_of_event(event)
    if room is not None:
        await _history_broadcast(room.ref)


def _turn_begin_call(
    *,
    ref: ConversationRef,
    owner: Owner,
    frame: protocol.SendFrame | protocol.RegenerateFrame | protocol.EditFrame,
) -> TurnBegin:
    """The service that stores the frame's turn (a send, a regenerate or an edit), waiting for its
    `streamed_by`."""
    options = {
        "ref": ref,
        "owner": owner,
        "model": frame.model,
        "mcp_servers": frame.mcp_servers,
        "client_id": frame.client_id,
    }
    if isinstance(frame, protocol.RegenerateFrame):
        return functools.partial(turns.turn_regenerate, reply_id=frame.message_id, **options)
    if isinstance(frame, protocol.EditFrame):
        return functools.partial(
            turns.turn_edit, message_id=frame.message_id, content=frame.message, **options
        )
    return functools.partial(turns.turn_begin, content=frame.message, **options)


async def turn_start(
    *,
    ref: ConversationRef,
    owner: Owner,
    client_id: str,
    begin: TurnBegin,
    send: live.Send,
    anonymous_address: str = "",
) -> None:
    """Store a turn with `begin` (a message, a regenerated reply or an edited message) and start its
    reply; a resend of a stored `client_id` starts nothing.

    Every kind of turn takes this one path: the same refusals, the same `start` to every socket, the
    same reply task and the same announcement to the other instances.
    """
    instance = await instances.instance_get()
    if instance.draining:
        raise Unavailable("This server is restarting; send again in a moment.")
    room = live.room_get(ref)
    if room.reply is not None and not client_id:  # with one, it may be a resend: the store decides
        raise Busy()
    if not settings.DEDALUS_API_KEY:
        raise NotConfigured()
    await throttles.message_rate_check(owner_key=owner.key, anonymous_address=anonymous_address)
    # Reserved before the write: a socket joining between the commit and the reply's registration
    # below waits for it instead of taking it for a reply of another instance.
    room.turn_reserve()
    try:
        started = asyncio.get_running_loop().time()
        turn = await _turn_store(begin, instance)
        if isinstance(turn, turns.DuplicateSend):
            await send(
                protocol.dumps(
                    {"type": "duplicate", "client_id": turn.client_id, "message_id": turn.message_id}
                )
            )
            return
        reply = room.reply = live.LiveReply(
            message_id=turn.reply_id, model=turn.model, lease_deadline=lease_deadline_from(started)
        )
        start = protocol.dumps(
            protocol.start_frame(
                message_id=turn.reply_id,
                model=turn.model,
                parent_id=turn.parent_id,
                user_message=turn.user_message,
            )
        )
        await room.broadcast(start)
        reply.task = asyncio.create_task(
            # Lost to another instance (this one froze past its lease), the reply's sockets here may hold
            # text that was not stored: they get the stored history before the end.
            reply_run(
                room=room,
                reply=reply,
                turn=turn,
                instance=instance,
                on_lost=functools.partial(_history_broadcast, ref),
            ),
            name=f"reply-{turn.reply_id}",
        )
        _task_keep(reply.task)
    finally:
        room.turn_settle()
        if room.reply is not None and room.reply.owned and room.reply.task is None:
            room.reply = None  # never started: its row lapses unrenewed and is stored as lost
        live.room_release(room)
    # Sockets of this conversation on other instances start following the reply's log (if the event is
    # lost, they find the reply when they reconnect).
    await _room_event_announce(
        instance, ref, "reply.started", reply_id=turn.reply_id, model=turn.model, start=start
    )


async def _turn_store(begin: TurnBegin, instance: instances.Instance) -> turns.Turn | turns.DuplicateSend:
    """Store a turn, once more after storing as lost a reply whose server died in its way. A turn's
    write is never retried after a database failure (its COMMIT may have landed): the client resends."""
    store = db_call(begin, retry=False)
    try:
        try:
            return await store(streamed_by=instance.instance_id)
        except turns.ReplyLapsed as lapsed:
            await replies_lost_store(instance, [lapsed.reply_id])
            return await store(streamed_by=instance.instance_id)
    except (OperationalError, InterfaceError) as exc:
        logger.warning("turn not stored: the database failed", exc_info=True)
        raise Unavailable("The database did not answer; send your message again.") from exc


async def _on_reply_started(event: dict[str, Any]) -> None:
    """Another instance started a reply: where this one has sockets on that conversation, follow it."""
    room = await _room_of_event(event)
    if room is None:
        return
    if room.reply is not None and room.reply.message_id >= event["reply_id"]:
        return  # already following it (another socket here got the same event first)
    await room.broadcast(event["start"])
    _follow_start(room, event["reply_id"], event["model"], await instances.instance_get())


async def reply_stop(*, ref: ConversationRef) -> bool:
    """Stop the reply in flight of a conversation, on whichever instance streams it.

    Return False when nothing streams (stop is idempotent).
    """
    room = live.room_find(ref)
    reply = room.reply if room else None
    if reply is not None and reply.owned:
        return reply_cancel(reply, reason="stopped")
    streaming = await db_call(selectors.conversation_streaming_reply)(ref=ref)
    if streaming is None:
        return False
    reply_id, lease_owner = streaming
    instance = await instances.instance_get()
    if lease_owner == instance.instance_id:
        return False  # ours, and ending right now
    try:
        await instances.event_publish(
            instance, {"type": "reply.stop", "owner": lease_owner, "reply_id": reply_id}
        )
    except (RedisError, OSError) as exc:
        logger.warning(
            "stop could not reach the streaming instance", extra={"message_id": reply_id}, exc_info=True
        )
        raise Unavailable("Could not reach the server writing this reply; try again.") from exc
    return True


def reply_cancel(reply: live.LiveReply, *, reason: str) -> bool:
    """Cancel an owned reply's upstream request; it then stores its partial text as interrupted."""
    if reply.task is None or reply.stop_reason is not None or reply.task.done():
        return False
    reply.stop_reason = reason
    reply.task.cancel()
    return True


async def _on_reply_stop(event: dict[str, Any]) -> None:
    """Another instance's socket asked to stop a reply: stop it if this instance streams it."""
    instance = await instances.instance_get()
    if event.get("owner") != instance.instance_id:
        return
    for _room, reply in live.owned_replies():
        if reply.message_id == event.get("reply_id"):
            reply_cancel(reply, reason="stopped")


async def reply_resend(*, ref: ConversationRef, message_id: int, offset: int, send: live.Send) -> None:
    """Send a reply's text from `offset` in bounded chunk frames, to the socket that saw a gap."""
    page = settings.CHAT_RESYNC_PAGE_CHARS
    room = live.room_find(ref)
    if room is not None and room.reply is not None and room.reply.message_id == message_id:
        text, end_frame = room.reply.text(), None
    else:
        stored = await db_call(selectors.reply_stored)(reply_id=message_id)
        if stored is None or (stored.conversation.owner_key, stored.conversation.session_id) != (
            ref.owner_key,
            ref.session_id,
        ):
            raise NoSuchReply()
        text = stored.content
        end_frame = (
            None if stored.status == Message.Status.STREAMING else terminal_frame_from_row(stored, message_id)
        )
    for start in range(offset, len(text), page):
        await send(
            protocol.chunk_frame_text(content=text[start : start + page], message_id=message_id, offset=start)
        )
    if end_frame is not None:
        await send(protocol.dumps(end_frame))


async def _heartbeat() -> None:
    """Renew the leases of this process's live replies (Postgres only, so a Redis outage never lets
    them lapse), store replies whose server died as lost, and renew this process's socket counts."""
    instance = await instances.instance_get()
    for step in (_leases_renew, _lapsed_replies_store, _sockets_renew):
        try:
            await step(instance)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("heartbeat step failed", extra={"step": step.__name__}, exc_info=True)


async def _leases_renew(instance: instances.Instance) -> None:
    """Renew the lease of every reply a task of this process streams (and only those); a reply another
    instance stored as lost meanwhile is stopped here."""
    owned = [reply for _room, reply in live.owned_replies()]
    if not owned:
        return
    started = asyncio.get_running_loop().time()
    held = await db_call(replies.reply_leases_renew)(
        streamed_by=instance.instance_id, reply_ids=[reply.message_id for reply in owned]
    )
    for reply in owned:
        if reply.message_id in held:
            reply.lease_deadline = lease_deadline_from(started)
        elif not reply.ending:
            reply_cancel(reply, reason="lost")


async def _lapsed_replies_store(instance: instances.Instance) -> None:
    await replies_lost_store(instance, await db_call(replies.lapsed_reply_ids)())


async def _sockets_renew(instance: instances.Instance) -> None:
    await throttles.sockets_renew(instance=instance, sockets=dict(sockets_open))


async def _shutdown() -> None:
    """SIGTERM: give replies in flight the grace period to finish, then store the rest as interrupted."""
    owned = [reply for _room, reply in live.owned_replies() if reply.task is not None]
    logger.info("shutting down", extra={"replies_in_flight": len(owned)})
    tasks = [reply.task for reply in owned if reply.task is not None]
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=settings.CHAT_SHUTDOWN_GRACE_SECONDS)
    for reply in owned:
        if reply.task in pending:
            reply_cancel(reply, reason="interrupted")
    if pending:
        await asyncio.wait(pending, timeout=10)
    instance = await instances.instance_get()
    if instance.log_writer is not None:
        await asyncio.wait_for(instance.log_writer.drained(), timeout=5)


async def _on_events_resubscribed() -> None:
    """After an outage of the events: follow the replies that started elsewhere in rooms with sockets here."""
    instance = await instances.instance_get()
    for room in live.rooms_listening():
        if room.reply is not None:
            continue
        history = await db_call(selectors.conversation_history)(ref=room.ref)
        if room.reply is not None:
            continue  # a reply.started arrived meanwhile
        await _streaming_elsewhere_find(room, history, instance)
        if (
            room.reply is not None
        ):  # the sockets get the reply so far, then follow it as if they had joined now
            await room.broadcast(_history_frame(room.ref, history, room.reply))


instances.resubscribed_hooks.append(_on_events_resubscribed)
instances.event_handlers["reply.stop"] = _on_reply_stop
instances.event_handlers["reply.started"] = _on_reply_started
instances.event_handlers["branch.switched"] = _on_branch_switched
instances.heartbeat_hooks.append(_heartbeat)
instances.shutdown_hooks.append(_shutdown)


async def replies_drain() -> None:
    """Wait for every reply task of this process to end (tests)."""
    while _reply_tasks:
        await asyncio.gather(*list(_reply_tasks), return_exceptions=True)
