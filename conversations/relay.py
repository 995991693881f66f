"""Turn orchestration: sockets join conversations, messages start replies, replies stream to every socket.

A reply runs in a task owned by the server, not by the socket that asked for it: closing the socket
cancels nothing, the reply runs to its end and is stored, and a socket that joins later sees it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from functools import partial
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from . import live, protocol, selectors, services, upstream
from .exceptions import ChatError
from .models import Message

logger = logging.getLogger(__name__)

# Service calls are self-contained, so they may run on any worker thread (each with its own
# connection): a hundred turns starting at once do not queue behind one thread.
db_call = partial(database_sync_to_async, thread_sensitive=False)

# Reply tasks are referenced here so the event loop never garbage-collects one mid-reply.
_reply_tasks: set[asyncio.Task[None]] = set()


async def conversation_join(*, session_id: str, key: int, send: live.Send) -> None:
    """Subscribe a socket to a conversation and send it the `history` frame.

    The frame carries the reply in flight, if any, with its text so far; the socket then receives
    exactly the chunks after it.
    """
    for _ in range(2):
        history = await db_call(selectors.conversation_history)(session_id=session_id)
        room = live.room_get(session_id)
        if _history_matches_live(history, room.reply):
            break  # else a reply started or ended during the read: read once more
    # No await between the snapshot of the live reply and the subscription: no gap, no duplicate.
    if room.reply is not None:
        text = room.reply.text()
        history["streaming"] = {"message_id": room.reply.message_id, "content": text, "offset": len(text)}
        for message in history["messages"]:
            if message["id"] == room.reply.message_id:
                message["content"] = text
    room.subscribers[key] = send
    await send(protocol.dumps({"type": "history", "session_id": session_id, **history}))


def _history_matches_live(history: dict[str, Any], reply: live.LiveReply | None) -> bool:
    """True when the stored history and this process's reply in flight tell the same story."""
    live_id = reply.message_id if reply is not None else None
    ids = {message["id"] for message in history["messages"]}
    if live_id is not None and live_id not in ids:
        return False
    return not any(
        m["status"] == Message.Status.STREAMING and m["id"] != live_id for m in history["messages"]
    )


def conversation_leave(*, session_id: str, key: int) -> None:
    """Unsubscribe a socket. Its reply in flight, if any, goes on."""
    room = live.room_find(session_id)
    if room is not None:
        room.subscribers.pop(key, None)
        live.room_release(room)


async def client_frame_handle(*, session_id: str, owner: services.Owner, frame: protocol.ClientFrame) -> None:
    """Act on one client frame. Raise ChatError for the client when it cannot be done."""
    if isinstance(frame, protocol.StopFrame):
        reply_stop(session_id=session_id)
        return
    room = live.room_get(session_id)
    if room.reply is not None:
        raise ChatError("busy", "A reply is still being written in this conversation; wait or stop it.")
    if not settings.DEDALUS_API_KEY:
        raise ChatError("not_configured", "The server has no DEDALUS_API_KEY; ask its operator to set one.")
    turn = await db_call(services.turn_begin)(
        session_id=session_id,
        owner=owner,
        content=frame.message,
        model=frame.model,
        mcp_servers=frame.mcp_servers,
    )
    # Looked up again: the room may have been released while the turn was stored.
    room = live.room_get(session_id)
    room.reply = live.LiveReply(message_id=turn.reply_id, model=turn.model)
    await room.broadcast(
        protocol.dumps(
            protocol.start_frame(message_id=turn.reply_id, model=turn.model, user_message=turn.user_message)
        )
    )
    task = asyncio.create_task(reply_run(room=room, turn=turn), name=f"reply-{turn.reply_id}")
    room.reply.task = task
    _reply_tasks.add(task)
    task.add_done_callback(_reply_tasks.discard)


def reply_stop(*, session_id: str) -> bool:
    """Cancel the reply in flight of a conversation; return False when there is none (stop is idempotent)."""
    room = live.room_find(session_id)
    reply = room.reply if room else None
    if reply is None or reply.task is None or reply.stopping:
        return False
    reply.stopping = True
    reply.task.cancel()
    return True


async def reply_run(*, room: live.ConversationRoom, turn: services.Turn) -> None:
    """Stream one reply from upstream to every socket of the conversation, then store how it ended."""
    reply = room.reply
    assert reply is not None
    loop = asyncio.get_running_loop()
    next_flush = loop.time() + settings.CHAT_FLUSH_INTERVAL
    outcome: dict[str, Any] = {"status": Message.Status.COMPLETE, "finish_reason": "stop"}
    tools: list[dict[str, Any]] = []
    try:
        async for event in upstream.reply_stream(
            model=turn.model, messages=turn.upstream_messages, mcp_servers=turn.mcp_servers
        ):
            if isinstance(event, upstream.TextDelta):
                offset = reply.append(event.text)
                await room.broadcast(
                    protocol.chunk_frame_text(content=event.text, message_id=reply.message_id, offset=offset)
                )
                if loop.time() >= next_flush:
                    next_flush = loop.time() + settings.CHAT_FLUSH_INTERVAL
                    await db_call(services.reply_flush)(reply_id=reply.message_id, content=reply.text())
            elif isinstance(event, upstream.ToolActivity):
                activity = asdict(event)
                tools.append(activity)
                await room.broadcast(
                    protocol.dumps(protocol.tool_frame(message_id=reply.message_id, activity=activity))
                )
            else:
                outcome.update(finish_reason=event.reason or "stop", usage=event.usage)
    except asyncio.CancelledError:
        outcome = {"status": Message.Status.INTERRUPTED, "finish_reason": "stopped"}
    except ChatError as exc:
        outcome = {
            "status": Message.Status.ERROR,
            "finish_reason": "error",
            "error_code": exc.code,
            "error": exc.message,
        }
    except Exception:
        logger.exception(
            "reply failed", extra={"session_id": turn.session_id, "message_id": reply.message_id}
        )
        outcome = {
            "status": Message.Status.ERROR,
            "finish_reason": "error",
            "error_code": "internal_error",
            "error": "The server failed while writing this reply.",
        }
    # Shielded: a second cancellation (shutdown) must not lose the final text.
    await asyncio.shield(_reply_conclude(room=room, reply=reply, outcome=outcome, tools=tools))


async def _reply_conclude(
    *,
    room: live.ConversationRoom,
    reply: live.LiveReply,
    outcome: dict[str, Any],
    tools: list[dict[str, Any]],
) -> None:
    """Store the reply's end, then tell every socket: `done`, or `error` for a failed reply."""
    try:
        await db_call(services.reply_finish)(
            reply_id=reply.message_id, content=reply.text(), tools=tools, **outcome
        )
    finally:
        room.reply = None
        live.room_release(room)
    if outcome["status"] == Message.Status.ERROR:
        frame = protocol.error_frame(outcome["error_code"], outcome["error"], message_id=reply.message_id)
    else:
        frame = protocol.done_frame(
            message_id=reply.message_id, usage=outcome.get("usage"), finish_reason=outcome["finish_reason"]
        )
    await room.broadcast(protocol.dumps(frame))
    logger.info(
        "reply ended",
        extra={
            "session_id": room.session_id,
            "message_id": reply.message_id,
            "status": outcome["status"],
            "chars": reply.length,
        },
    )


async def replies_drain() -> None:
    """Wait for every reply task of this process to end (tests and shutdown)."""
    while _reply_tasks:
        await asyncio.gather(*list(_reply_tasks), return_exceptions=True)
