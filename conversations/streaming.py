"""The two tasks that feed a live reply: streaming it from upstream (owner), or following another
instance's reply log (follower). Both hand every frame to the conversation's sockets on this process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError
from redis.exceptions import RedisError

from . import live, metrics, protocol, replylog, selectors, services, upstream
from .exceptions import ChatError
from .instance import Instance
from .models import Message

logger = logging.getLogger(__name__)

T = TypeVar("T")


def db_call(func: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """Run a service call on a worker thread; once more on a fresh connection if the old one was dead.

    Service calls are self-contained (each write is atomic, so a failed one left nothing), so they may
    run on any thread, each with its own connection: a hundred turns starting at once do not queue
    behind one. Connections are reused without a ping per call; one the database dropped (a restart,
    an idle timeout) fails once, is discarded by Django, and the call is retried on a new one.
    """
    run = database_sync_to_async(func, thread_sensitive=False)

    async def call(**kwargs: Any) -> T:
        try:
            return await run(**kwargs)
        except (OperationalError, InterfaceError):
            logger.warning("database call failed; retrying on a new connection", exc_info=True)
            return await run(**kwargs)

    return call


# How long a follower waits on the log before it checks the stored row (its writer may be gone).
FOLLOW_CHECK_MS = 2000


@dataclass(slots=True)
class ReplyStats:
    """What one reply cost, for its log line and the metrics."""

    model: str
    started: float
    first_event_at: float | None = None
    flushes: int = 0


async def reply_run(
    *, room: live.ConversationRoom, reply: live.LiveReply, turn: services.Turn, instance: Instance
) -> None:
    """Stream one reply from upstream to every socket of the conversation, then store how it ended."""
    log = instance.log_writer
    if log is not None:
        log.start(reply.message_id)
    loop = asyncio.get_running_loop()
    stats = ReplyStats(model=turn.model, started=loop.time())
    metrics.REPLIES_IN_FLIGHT.inc()
    chunks_relayed = metrics.CHUNKS_RELAYED.labels(turn.model)
    next_flush = stats.started + settings.CHAT_FLUSH_INTERVAL
    outcome: dict[str, Any] = {"status": Message.Status.COMPLETE, "finish_reason": "stop"}
    try:
        async for event in upstream.reply_stream(
            model=turn.model, messages=turn.upstream_messages, mcp_servers=turn.mcp_servers
        ):
            if stats.first_event_at is None:
                stats.first_event_at = loop.time()
                metrics.UPSTREAM_FIRST_TOKEN.observe(stats.first_event_at - stats.started)
            if isinstance(event, upstream.TextDelta):
                offset = reply.append(event.text)
                await room.broadcast(
                    protocol.chunk_frame_text(content=event.text, message_id=reply.message_id, offset=offset)
                )
                now = loop.time()
                metrics.RELAY_DELAY.observe(now - event.received_at)
                chunks_relayed.inc()
                if log is not None:
                    log.text(reply.message_id, offset, event.text)
                if now >= next_flush:
                    next_flush = now + settings.CHAT_FLUSH_INTERVAL
                    stats.flushes += 1
                    await db_call(services.reply_flush)(reply_id=reply.message_id, content=reply.text())
            elif isinstance(event, upstream.ToolActivity):
                activity = asdict(event)
                reply.tools.append(activity)
                frame = protocol.dumps(protocol.tool_frame(message_id=reply.message_id, activity=activity))
                await room.broadcast(frame)
                if log is not None:
                    log.frame(reply.message_id, frame)
            else:
                outcome.update(finish_reason=event.reason or "stop", usage=event.usage)
    except asyncio.CancelledError:
        outcome = {"status": Message.Status.INTERRUPTED, "finish_reason": reply.stop_reason or "interrupted"}
    except ChatError as exc:
        outcome = {
            "status": Message.Status.ERROR,
            "finish_reason": "error",
            "error_code": exc.code,
            "error": exc.message,
        }
    except Exception:
        logger.exception(
            "reply failed", extra={"session_id": turn.ref.session_id, "message_id": reply.message_id}
        )
        outcome = {
            "status": Message.Status.ERROR,
            "finish_reason": "error",
            "error_code": "internal_error",
            "error": "The server failed while writing this reply.",
        }
    # Shielded: a second cancellation (shutdown) must not lose the final text.
    await asyncio.shield(_reply_conclude(room=room, reply=reply, outcome=outcome, log=log, stats=stats))


async def _reply_conclude(
    *,
    room: live.ConversationRoom,
    reply: live.LiveReply,
    outcome: dict[str, Any],
    log: replylog.ReplyLogWriter | None,
    stats: ReplyStats,
) -> None:
    """Store the reply's end, then tell every socket, here and (through the log) elsewhere."""
    try:
        await db_call(services.reply_finish)(
            reply_id=reply.message_id, content=reply.text(), tools=reply.tools, **outcome
        )
    finally:
        reply_release(room, reply)
        metrics.REPLIES_IN_FLIGHT.dec()
    if outcome["status"] == Message.Status.ERROR:
        frame = protocol.error_frame(outcome["error_code"], outcome["error"], message_id=reply.message_id)
    else:
        frame = protocol.done_frame(
            message_id=reply.message_id, usage=outcome.get("usage"), finish_reason=outcome["finish_reason"]
        )
    text = protocol.dumps(frame)
    await room.broadcast(text)
    if log is not None:
        log.end(reply.message_id, text)
    _reply_account(room=room, reply=reply, outcome=outcome, stats=stats)


def _reply_account(
    *, room: live.ConversationRoom, reply: live.LiveReply, outcome: dict[str, Any], stats: ReplyStats
) -> None:
    """One metrics update and one structured log line per reply (never its text)."""
    ended = asyncio.get_running_loop().time()
    usage = outcome.get("usage") or {}
    metrics.REPLIES_FINISHED.labels(outcome["status"]).inc()
    metrics.DB_FLUSHES.observe(stats.flushes)
    if usage.get("completion_tokens"):
        metrics.TOKENS_RELAYED.labels(stats.model).inc(usage["completion_tokens"])
    code = outcome.get("error_code", "")
    if code.startswith("upstream_"):
        metrics.UPSTREAM_ERRORS.labels(code).inc()
    first = stats.first_event_at
    logger.info(
        "reply ended",
        extra={
            "session_id": room.ref.session_id,
            "message_id": reply.message_id,
            "model": stats.model,
            "status": outcome["status"],
            "finish_reason": outcome["finish_reason"],
            "error_code": code or None,
            "chars": reply.length,
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
            "first_token_ms": round((first - stats.started) * 1000, 1) if first is not None else None,
            "duration_ms": round((ended - stats.started) * 1000, 1),
            "db_flushes": stats.flushes,
        },
    )


def reply_release(room: live.ConversationRoom, reply: live.LiveReply) -> None:
    """Forget a reply that ended, unless a newer one took its place."""
    if room.reply is reply:
        room.reply = None
    live.room_release(room)


def terminal_frame_from_row(message: Message | None, reply_id: int) -> dict[str, Any]:
    """The `done` or `error` frame that ends a reply, rebuilt from its stored row."""
    if message is None:
        return protocol.error_frame("internal_error", "The reply is gone.", message_id=reply_id)
    if message.status == Message.Status.ERROR:
        return protocol.error_frame(
            message.error_code or "upstream_error", message.error, message_id=reply_id
        )
    return protocol.done_frame(
        message_id=reply_id, usage=message.usage, finish_reason=message.finish_reason or "interrupted"
    )


async def reply_follow(*, room: live.ConversationRoom, reply: live.LiveReply, instance: Instance) -> None:
    """Follow another instance's reply from its log: the backlog first, then each entry as it lands.

    When the log falls silent, the stored row decides: a reply that ended there (its writer died and
    its lease lapsed, or the log was lost) ends here too, with the row's final state.
    """
    assert instance.redis is not None
    after, delay = "0-0", 0.5
    try:
        while True:
            try:
                block = FOLLOW_CHECK_MS if reply.loaded.is_set() else None
                entries = await replylog.log_read(instance.redis, reply.message_id, after, block_ms=block)
                delay = 0.5
            except (RedisError, OSError):
                logger.warning("reply log read failed", extra={"message_id": reply.message_id}, exc_info=True)
                reply.loaded.set()  # joiners go on with what is known; the row check below still ends it
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
                entries = []
            for entry in entries:
                after = entry.entry_id
                if entry.kind == "end":
                    await room.broadcast(entry.frame)
                    return
                if entry.kind == "tool":
                    reply.tools.append(protocol.tool_activity_of(entry.frame))
                    await room.broadcast(entry.frame)
                elif entry.text:
                    await _follow_text(room, reply, entry)
            if not reply.loaded.is_set():
                reply.loaded.set()
            elif not entries:
                stored = await db_call(selectors.reply_stored)(reply_id=reply.message_id)
                if stored is None or stored.status != Message.Status.STREAMING:
                    await _follow_catch_up(room, reply, stored)
                    return
    finally:
        reply.loaded.set()
        reply_release(room, reply)


async def _follow_text(room: live.ConversationRoom, reply: live.LiveReply, entry: replylog.LogEntry) -> None:
    text, offset = entry.text, entry.offset
    if offset < reply.length:  # already have its start (a log read twice): keep what is new
        text, offset = text[reply.length - offset :], reply.length
        if not text:
            return
    if offset > reply.length:
        logger.warning(
            "reply log gap", extra={"message_id": reply.message_id, "at": reply.length, "next": offset}
        )
    reply.append(text)
    await room.broadcast(protocol.chunk_frame_text(content=text, message_id=reply.message_id, offset=offset))


async def _follow_catch_up(
    room: live.ConversationRoom, reply: live.LiveReply, stored: Message | None
) -> None:
    """End a followed reply from its stored row: send the text this instance missed, then the end."""
    if stored is not None and len(stored.content) > reply.length:
        missing = stored.content[reply.length :]
        offset = reply.append(missing)
        await room.broadcast(
            protocol.chunk_frame_text(content=missing, message_id=reply.message_id, offset=offset)
        )
    await room.broadcast(protocol.dumps(terminal_frame_from_row(stored, reply.message_id)))
