"""What this instance does for the cluster: act on the other instances' events, beat (renew leases,
store replies whose server died, renew socket counts), catch up after an events outage, and drain at
shutdown. `HOOKS` is installed on every instance by the app's ready().
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings

from ..chat import replies, selectors
from . import live
from .dbcall import db_call
from .history import (
    follow_start,
    history_broadcast,
    history_frame,
    replies_lost_store,
    streaming_elsewhere_find,
)
from .instance import Instance, InstanceHooks
from .session_ends import SESSION_ENDED_EVENT, session_sockets_close, sessions_sweep

logger = logging.getLogger(__name__)


async def event_handle(instance: Instance, event: dict[str, Any]) -> None:
    """Act on one event from any instance (this one's own included)."""
    kind = event.get("type")
    if kind == "reply.stop":
        await _on_reply_stop(instance, event)
    elif kind == "reply.started":
        await _on_reply_started(instance, event)
    elif kind == "branch.switched":
        await _on_branch_switched(instance, event)
    elif kind == "room.frame":
        await _on_room_frame(instance, event)
    elif kind == SESSION_ENDED_EVENT:
        await session_sockets_close(instance, event["session"])


def _room_announced(instance: Instance, event: dict[str, Any]) -> live.ConversationRoom | None:
    """The room an event from another instance is about, when this instance has sockets in it."""
    if event["origin"] == instance.instance_id:
        return None
    room = instance.rooms.find_key(event["room"])
    return room if room is not None and room.subscribers else None


async def _on_reply_started(instance: Instance, event: dict[str, Any]) -> None:
    """Another instance started a reply: where this one has sockets on that conversation, follow it."""
    room = _room_announced(instance, event)
    if room is None:
        return
    if room.reply is not None and room.reply.message_id >= event["reply_id"]:
        return  # already following it (another socket here got the same event first)
    await room.broadcast(event["start"])
    follow_start(instance, room, event["reply_id"], event["model"])


async def _on_reply_stop(instance: Instance, event: dict[str, Any]) -> None:
    """A socket somewhere asked to stop a reply: stop it if this instance streams it."""
    if event.get("streamed_by") != instance.instance_id:
        return
    for reply in instance.rooms.local_replies():
        if reply.message_id == event.get("reply_id"):
            reply.cancel(reason="stopped")


async def _on_branch_switched(instance: Instance, event: dict[str, Any]) -> None:
    """Another instance switched a conversation's branch: its sockets here get the new history."""
    room = _room_announced(instance, event)
    if room is not None:
        await history_broadcast(instance, room.ref)


async def _on_room_frame(instance: Instance, event: dict[str, Any]) -> None:
    """Another instance sent a frame to a conversation's sockets (fanout.py): the sockets here get it."""
    room = _room_announced(instance, event)
    if room is not None:
        await room.broadcast(event["frame"])


async def resubscribed(instance: Instance) -> None:
    """After an outage of the events: follow the replies that started elsewhere in rooms with sockets here."""
    for room in instance.rooms.listening():
        if room.reply is not None:
            continue
        history = await db_call(selectors.conversation_history)(ref=room.ref)
        if room.reply is not None:
            continue  # a reply.started arrived meanwhile
        await streaming_elsewhere_find(instance, room, history)
        if room.reply is not None:
            # The sockets get the reply so far, then follow it as if they had joined now.
            await room.broadcast(history_frame(room.ref, history, room.reply))


async def heartbeat(instance: Instance) -> None:
    """Renew the leases of this process's live replies (Postgres only, so a Redis outage never lets
    them lapse), store replies whose server died as lost, renew this process's socket counts, and close
    sockets whose session ended (at most every CHAT_SOCKET_SESSION_CHECK_SECONDS)."""
    for step in (_leases_renew, _lapsed_replies_store, _sockets_renew, sessions_sweep):
        try:
            await step(instance)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("heartbeat step failed", extra={"step": step.__name__}, exc_info=True)


async def _leases_renew(instance: Instance) -> None:
    """Renew the lease of every reply a task of this process streams (and only those); a reply another
    instance stored as lost meanwhile is stopped here."""
    local = instance.rooms.local_replies()
    if not local:
        return
    started = asyncio.get_running_loop().time()
    held = await db_call(replies.reply_leases_renew)(
        streamed_by=instance.instance_id, reply_ids=[reply.message_id for reply in local]
    )
    for reply in local:
        if reply.message_id in held:
            reply.lease_renewed(started)
        elif not reply.ending:
            reply.cancel(reason="lost")


async def _lapsed_replies_store(instance: Instance) -> None:
    await replies_lost_store(instance, await db_call(replies.lapsed_reply_ids)())


async def _sockets_renew(instance: Instance) -> None:
    await instance.socket_counter.renew(dict(instance.sockets))


async def drain(instance: Instance) -> None:
    """SIGTERM: give replies in flight the grace period to finish, then store the rest as interrupted."""
    local = [reply for reply in instance.rooms.local_replies() if reply.task is not None]
    logger.info("shutting down", extra={"replies_in_flight": len(local)})
    tasks = [reply.task for reply in local if reply.task is not None]
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=settings.CHAT_SHUTDOWN_GRACE_SECONDS)
    for reply in local:
        if reply.task in pending:
            reply.cancel(reason="interrupted")
    if pending:
        await asyncio.wait(pending, timeout=10)
    await asyncio.wait_for(instance.reply_log.drained(), timeout=5)


HOOKS = InstanceHooks(event=event_handle, resubscribed=resubscribed, heartbeat=heartbeat, drain=drain)
