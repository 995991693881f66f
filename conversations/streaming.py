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
from django.db import DatabaseError, InterfaceError, OperationalError
from redis.exceptions import RedisError

from . import live, metrics, protocol, quotas, replies, replylog, selectors, turns, upstream
from .exceptions import ChatError, InternalError
from .instance import Instance
from .models import Message

logger = logging.getLogger(__name__)

T = TypeVar("T")


def db_call(func: Callable[..., T], *, retry: bool = True) -> Callable[..., Awaitable[T]]:
    """Run a service call on a worker thread; with `retry`, once more on a fresh connection if the old
    one was dead.

    Service calls are self-contained, so they may run on any thread, each with its own connection: a
    hundred turns starting at once do not queue behind one. A connection the database dropped fails
    once and is discarded by Django. Only idempotent calls may be retried: a turn's write whose COMMIT
    was lost may have committed, so it takes `retry=False` and its failure reaches the client.
    """
    run = database_sync_to_async(func, thread_sensitive=False)
    if not retry:
        return run

    async def call(**kwargs: Any) -> T:
        try:
            return await run(**kwargs)
        except (OperationalError, InterfaceError):
            logger.warning("database call failed; retrying on a new connection", exc_info=True)
            return await run(**kwargs)

    return call


async def db_call_patient(func: Callable[..., T], *, budget: float, **kwargs: Any) -> T:
    """Run an idempotent service call, retrying with backoff while the database is away, for up to
    `budget` seconds; then raise its error."""
    loop = asyncio.get_running_loop()
    deadline, delay = loop.time() + budget, 0.1
    while True:
        try:
            return await db_call(func)(**kwargs)
        except (OperationalError, InterfaceError):
            if loop.time() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


# How long a follower waits on the log before it checks the stored row (its writer may be gone).
FOLLOW_CHECK_MS = 2000


@dataclass(slots=True)
class ReplyStats:
    """What one reply cost, for its log line and the metrics."""

    model: str
    started: float
    first_event_at: float | None = None
    flushes: int = 0


# An owned reply shows text for at most this share of its lease after the lease's last renewal began
# (the database set the expiry after that moment), so it stops well before anyone may judge it lost.
LEASE_SHOW_SHARE = 0.8
# How long the end of a reply is retried while the database is away, before the reply is left to lapse.
END_STORE_SECONDS = 60.0


class LeaseLost(Exception):
    """This instance no longer holds the reply: another instance stored it as lost (this one froze, or
    was cut off from the database, past its lease)."""


def lease_deadline_from(started: float) -> float:
    """The loop time until which a reply may show text, for a lease renewed at loop time `started`."""
    return started + settings.CHAT_REPLY_LEASE_SECONDS * LEASE_SHOW_SHARE


async def lease_renew(reply: live.LiveReply, instance: Instance) -> None:
    """Renew a reply's lease, past its deadline, before this instance shows more of it. Raise LeaseLost
    when another instance stored the reply as lost meanwhile."""
    started = asyncio.get_running_loop().time()
    held = await db_call_patient(
        replies.reply_leases_renew,
        budget=settings.CHAT_REPLY_LEASE_SECONDS,
        streamed_by=instance.instance_id,
        reply_ids=[reply.message_id],
    )
    if reply.message_id not in held:
        raise LeaseLost
    reply.lease_deadline = lease_deadline_from(started)


async def reply_run(
    *,
    room: live.ConversationRoom,
    reply: live.LiveReply,
    turn: turns.Turn,
    instance: Instance,
    on_lost: Callable[[], Awaitable[None]],
) -> None:
    """Stream one reply from upstream to every socket of the conversation, then store how it ended.

    Every `start` ends with exactly one `done` or `error` on every socket. When another instance stored
    the reply as lost meanwhile, `on_lost` first gives this instance's sockets the stored state.
    """
    log = instance.log_writer
    if log is not None:
        log.start(reply.message_id)
    loop = asyncio.get_running_loop()
    stats = ReplyStats(model=turn.model, started=loop.time())
    metrics.REPLIES_IN_FLIGHT.inc()
    chunks_relayed = metrics.CHUNKS_RELAYED.labels(turn.model)
    next_flush = stats.started + settings.CHAT_FLUSH_INTERVAL
    outcome: dict[str, Any] | None = {"status": Message.Status.COMPLETE, "finish_reason": "stop"}
    try:
        async for event in upstream.reply_stream(
            model=turn.model, messages=turn.upstream_messages, mcp_servers=turn.mcp_servers
        ):
            if stats.first_event_at is None:
                stats.first_event_at = loop.time()
                metrics.UPSTREAM_FIRST_TOKEN.observe(stats.first_event_at - stats.started)
            if isinstance(event, upstream.TextDelta):
                if loop.time() >= reply.lease_deadline:
                    await lease_renew(reply, instance)
                offset = reply.append(event.text)
                for frame in protocol.chunk_frames_text(
                    content=event.text, message_id=reply.message_id, offset=offset
                ):
                    await room.broadcast(frame)
                now = loop.time()
                metrics.RELAY_DELAY.observe(now - event.received_at)
                chunks_relayed.inc()
                if log is not None:
                    log.text(reply.message_id, offset, event.text)
                if now >= next_flush:
                    next_flush = now + settings.CHAT_FLUSH_INTERVAL
                    stats.flushes += 1
                    if not await db_call(replies.reply_flush)(
                        reply_id=reply.message_id, content=reply.text(), streamed_by=instance.instance_id
                    ):
                        raise LeaseLost
                    reply.lease_deadline = lease_deadline_from(now)
            elif isinstance(event, upstream.ToolActivity):
                if loop.time() >= reply.lease_deadline:
                    await lease_renew(reply, instance)
                activity = asdict(event)
                reply.tools.append(activity)
                frame = protocol.dumps(protocol.tool_frame(message_id=reply.message_id, activity=activity))
                await room.broadcast(frame)
                if log is not None:
                    log.frame(reply.message_id, frame)
            else:
                outcome.update(finish_reason=event.reason or "stop", usage=event.usage)
    except LeaseLost:
        outcome = None
    except asyncio.CancelledError:
        if reply.stop_reason == "lost":
            outcome = None
        else:
            outcome = {
                "status": Message.Status.INTERRUPTED,
                "finish_reason": reply.stop_reason or "interrupted",
            }
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
        outcome = INTERNAL_ERROR_OUTCOME
    if outcome is not None and not outcome.get("usage") and reply.length:
        # Cut short, the upstream reported no usage: what was streamed still counts against the quota.
        outcome = {
            **outcome,
            "usage_stored": quotas.usage_estimate(prompt=turn.upstream_messages, reply=reply.text()),
        }
    # Shielded: a second cancellation (shutdown) must not lose the final text.
    await asyncio.shield(
        _reply_conclude(
            room=room, reply=reply, outcome=outcome, log=log, stats=stats, instance=instance, on_lost=on_lost
        )
    )


INTERNAL_ERROR_OUTCOME: dict[str, Any] = {
    "status": Message.Status.ERROR,
    "finish_reason": "error",
    "error_code": "internal_error",
    "error": "The server failed while writing this reply.",
}


async def _reply_conclude(
    *,
    room: live.ConversationRoom,
    reply: live.LiveReply,
    outcome: dict[str, Any] | None,
    log: replylog.ReplyLogWriter | None,
    stats: ReplyStats,
    instance: Instance,
    on_lost: Callable[[], Awaitable[None]],
) -> None:
    """Store the reply's end, then tell every socket, here and (through the log) elsewhere.

    The end frame is sent on every path: when the reply was lost to another instance (`outcome` None, or
    the store found it taken), after `on_lost`; when its end could not be stored, as `internal_error`
    (the reply's lease then lapses and another instance stores it as lost).
    """
    stored: dict[str, Any] | None = None
    reply.ending = True
    try:
        if outcome is not None:
            stored = await _reply_end_store(reply, outcome, instance)
    except Exception:
        logger.exception("reply end not stored", extra={"message_id": reply.message_id})
        stored = INTERNAL_ERROR_OUTCOME
    finally:
        reply_release(room, reply)
        metrics.REPLIES_IN_FLIGHT.dec()
    if stored is None:
        logger.warning("reply lost to another instance", extra={"message_id": reply.message_id})
        try:
            await on_lost()
            row = await db_call(selectors.reply_stored)(reply_id=reply.message_id)
            frame = terminal_frame_from_row(row, reply.message_id)
        except Exception:
            logger.exception("lost reply's stored state unreadable", extra={"message_id": reply.message_id})
            frame = protocol.done_frame(message_id=reply.message_id, usage=None, finish_reason="server_lost")
        await room.broadcast(protocol.dumps(frame))
        return
    outcome = stored
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


async def _reply_end_store(
    reply: live.LiveReply, outcome: dict[str, Any], instance: Instance
) -> dict[str, Any] | None:
    """Store how a reply ended, retried while the database is away; a row that refuses the values is
    stored as an `internal_error` with its text. Return the outcome stored, or None when another
    instance holds the reply."""
    fields = {
        "reply_id": reply.message_id,
        "streamed_by": instance.instance_id,
        "content": reply.text(),
        "tools": reply.tools,
        **outcome,
    }
    fields["usage"] = fields.pop("usage_stored", None) or outcome.get("usage")
    try:
        held = await db_call_patient(replies.reply_finish, budget=END_STORE_SECONDS, **fields)
        return outcome if held else None
    except (OperationalError, InterfaceError):
        raise
    except DatabaseError:
        logger.exception("reply end refused by the database", extra={"message_id": reply.message_id})
    fields.update(tools=[], usage=None, **INTERNAL_ERROR_OUTCOME)
    held = await db_call_patient(replies.reply_finish, budget=END_STORE_SECONDS, **fields)
    return INTERNAL_ERROR_OUTCOME if held else None


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
        return protocol.error_frame_of(InternalError("The reply is gone."), message_id=reply_id)
    if message.status == Message.Status.ERROR:
        return protocol.error_frame(
            message.error_code or "upstream_error", message.error, message_id=reply_id
        )
    return protocol.done_frame(
        message_id=reply_id, usage=message.usage, finish_reason=message.finish_reason or "interrupted"
    )


async def reply_follow(*, room: live.ConversationRoom, reply: live.LiveReply, instance: Instance) -> None:
    """Follow another instance's reply from its log: the backlog first, then each entry as it lands.

    The follower never crosses a gap in the log (a failed write, a Redis restart): the missing text
    comes from the stored row. Its end comes from the stored row too, which the writer stores before it
    logs the end (or the instance that found the writer dead, before it logs the loss); when the log
    falls silent, the row decides whether the reply ended meanwhile.
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
                    await _follow_end(room, reply, entry.frame)
                    return
                if entry.kind == "tool":
                    reply.tools.append(protocol.tool_activity_of(entry.frame))
                    await room.broadcast(entry.frame)
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
        reply_release(room, reply)


async def _stored_or_none(reply_id: int) -> Message | None:
    """The stored reply, or None when the database cannot say right now (the follower asks again)."""
    try:
        return await db_call(selectors.reply_stored)(reply_id=reply_id)
    except DatabaseError:
        logger.warning("reply row unreadable", extra={"message_id": reply_id}, exc_info=True)
        return None


async def _follow_text(room: live.ConversationRoom, reply: live.LiveReply, entry: replylog.LogEntry) -> bool:
    """Relay one logged span of text from where this follower's text ends; return False when the reply
    ended (from its row) while a gap before the span was being filled."""
    text, offset = entry.text, entry.offset
    if offset > reply.length and not await _follow_gap_fill(room, reply, offset):
        return False
    # What this follower already has (a log read twice, or filled from the row) is not sent again.
    await _follow_send(room, reply, text[reply.length - offset :])
    return True


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
            await _follow_send(room, reply, stored.content[reply.length : until])
            return True
        await asyncio.sleep(max(settings.CHAT_FLUSH_INTERVAL / 2, 0.05))


async def _follow_send(room: live.ConversationRoom, reply: live.LiveReply, text: str) -> None:
    if text:
        offset = reply.append(text)
        for frame in protocol.chunk_frames_text(content=text, message_id=reply.message_id, offset=offset):
            await room.broadcast(frame)


async def _follow_end(room: live.ConversationRoom, reply: live.LiveReply, logged_frame: str) -> None:
    """End a followed reply at its logged end: the text this instance missed, then the end as stored
    (the logged frame when the row cannot be read)."""
    stored = await _stored_or_none(reply.message_id)
    if stored is None or stored.status == Message.Status.STREAMING:
        await room.broadcast(logged_frame)
        return
    await _follow_catch_up(room, reply, stored)


async def _follow_catch_up(room: live.ConversationRoom, reply: live.LiveReply, stored: Message) -> None:
    """End a followed reply from its stored row: send the text this instance missed, then the end."""
    await _follow_send(room, reply, stored.content[reply.length :])
    await room.broadcast(protocol.dumps(terminal_frame_from_row(stored, reply.message_id)))
