"""A local reply's task: stream it from upstream to every socket of its conversation here, log it for
the other instances, keep its lease, and store how it ended.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError

from .. import metrics, protocol, upstream
from ..attachments import parts as attachment_parts
from ..chat import quotas, replies, selectors, turns
from ..costs import reply_cost
from ..exceptions import ChatError
from ..models import Message
from . import live
from .dbcall import db_call, db_call_patient
from .history import history_broadcast
from .instance import Instance
from .titling import title_wanted, title_write

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplyStats:
    """What one reply cost, for its log line and the metrics."""

    model: str
    started: float
    first_event_at: float | None = None
    flushes: int = 0


@dataclass(slots=True)
class Durable:
    """How much of a local reply survives this instance: while every write to its log succeeded, all
    it received (the log holds it, and a reply stored as lost keeps what its log holds); after a failed
    or late write, a gap that a lost reply's stored text stops at, so what the database holds (`saved`,
    flushed at once and then every CHAT_FLUSH_INTERVAL)."""

    log_whole: bool = True
    saved: int = 0

    def until(self, reply: live.LiveReply) -> int:
        return reply.length if self.log_whole else self.saved


# How long the end of a reply is retried while the database is away, before the reply is left to lapse.
END_STORE_SECONDS = 60.0


class LeaseLost(Exception):
    """This instance no longer holds the reply: another instance stored it as lost (this one froze, or
    was cut off from the database, past its lease)."""


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
    reply.lease_renewed(started)


async def reply_stream(
    *,
    room: live.ConversationRoom,
    reply: live.LiveReply,
    turn: turns.Turn,
    instance: Instance,
) -> None:
    """Stream one reply from upstream to every socket of the conversation, then store how it ended.

    Every `start` ends with exactly one `done` or `error` on every socket. When another instance stored
    the reply as lost meanwhile, this instance's sockets first get the stored history (they may hold text
    that was not stored).
    """
    log = instance.reply_log
    log.start(reply.message_id)
    loop = asyncio.get_running_loop()
    stats = ReplyStats(model=turn.model, started=loop.time())
    metrics.REPLIES_IN_FLIGHT.inc()
    chunks_relayed = metrics.CHUNKS_RELAYED.labels(turn.model)
    next_flush = stats.started + settings.CHAT_FLUSH_INTERVAL
    chunk_interval = settings.CHAT_CHUNK_INTERVAL_MS / 1000
    outcome: dict[str, Any] | None = {"status": Message.Status.COMPLETE, "finish_reason": "stop"}
    durable = Durable()
    try:
        messages = await _request_messages(turn, instance)
        async for event in upstream.reply_stream(
            instance.upstream(),
            models=turn.models,
            messages=messages,
            mcp_servers=turn.mcp_servers,
            instructions=turn.instructions,
            request_settings=turn.settings,
            model_settings=turn.model_settings,
            served_models=reply.served_models,
            handoff_offsets=reply.handoff_offsets,
            mcp_credentials=turn.mcp_credentials,
        ):
            if stats.first_event_at is None:
                stats.first_event_at = loop.time()
                metrics.UPSTREAM_FIRST_TOKEN.observe(stats.first_event_at - stats.started)
            if isinstance(event, upstream.TextDelta):
                if not event.text:
                    continue
                taken = loop.time()
                offset = reply.append(event.text)
                # Shown once durable: a socket never holds text that a lost reply's stored text lacks.
                logged = log.text(reply.message_id, offset, event.text, urgent=not offset)
                if durable.log_whole and not await logged:
                    durable.log_whole = False
                    next_flush = taken  # the database holds it now, and then every flush interval
                if loop.time() >= reply.lease_deadline:
                    await lease_renew(reply, instance)
                await room.text_show(reply, durable.until(reply))
                now = loop.time()
                metrics.RELAY_DELAY.observe(now - event.received_at)
                chunks_relayed.inc()
                if now >= next_flush:
                    next_flush = now + settings.CHAT_FLUSH_INTERVAL
                    stats.flushes += 1
                    content = reply.text()
                    if not await db_call(replies.reply_flush)(
                        reply_id=reply.message_id, content=content, streamed_by=instance.instance_id
                    ):
                        raise LeaseLost
                    reply.lease_renewed(now)
                    durable.saved = len(content)
                    await room.text_show(reply, durable.until(reply))
                rest = chunk_interval - (loop.time() - taken)
                if rest > 0:
                    # The next read takes whatever arrived meanwhile: one frame instead of one per token.
                    await asyncio.sleep(rest)
            elif isinstance(event, upstream.ToolActivity):
                if loop.time() >= reply.lease_deadline:
                    await lease_renew(reply, instance)
                activity = asdict(event)
                frame = protocol.dumps(protocol.tool_frame(message_id=reply.message_id, activity=activity))
                await room.tool_publish(reply, activity, frame)
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
        _reply_conclude(room=room, reply=reply, outcome=outcome, stats=stats, instance=instance)
    )
    first_turn = turn.user_message is not None and turn.user_message["parent_id"] is None
    if (
        outcome is not None
        and outcome["status"] == Message.Status.COMPLETE
        and title_wanted(first_turn=first_turn)
    ):
        # After `done`, in a task of its own: the title never delays the reply nor the next turn.
        instance.reply_task_start(
            title_write(instance, room.ref, question=turn.user_message["content"], answer=reply.text()),
            name=f"title-{reply.message_id}",
        )


async def _request_messages(turn: turns.Turn, instance: Instance) -> list[dict[str, Any]]:
    """The turn's messages as sent, with the files they carry read (on the instance's file readers)."""
    if not turn.attachments:
        return turn.upstream_messages
    read = functools.partial(
        attachment_parts.request_messages,
        turn.upstream_messages,
        turn.attachments,
        files_readable=turn.files_readable,
        max_bytes=settings.CHAT_REQUEST_ATTACHMENT_MAX_BYTES,
    )
    return await asyncio.get_running_loop().run_in_executor(instance.file_reader, read)


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
    stats: ReplyStats,
    instance: Instance,
) -> None:
    """Store the reply's end, then tell every socket, here and (through the log) elsewhere.

    The end frame is sent on every path: when the reply was lost to another instance (`outcome` None, or
    the store found it taken), after the stored history; when its end could not be stored, as `internal_error`
    (the reply's lease then lapses and another instance stores it as lost). Text not shown yet is
    shown before the end only when the end stored it.
    """
    stored: dict[str, Any] | None = None
    text_stored = False
    reply.ending = True
    try:
        try:
            if outcome is not None:
                stored = await _reply_end_store(reply, outcome, instance)
                text_stored = stored is not None
        except Exception:
            logger.exception("reply end not stored", extra={"message_id": reply.message_id})
            stored = INTERNAL_ERROR_OUTCOME
        if text_stored:
            await room.text_show(reply, reply.length)  # stored with the end: durable now
    finally:
        instance.rooms.reply_end(room, reply)
        metrics.REPLIES_IN_FLIGHT.dec()
    if stored is None:
        logger.warning("reply lost to another instance", extra={"message_id": reply.message_id})
        try:
            await history_broadcast(instance, room.ref)
            row = await db_call(selectors.reply_stored)(reply_id=reply.message_id)
            frame = selectors.reply_end_frame(row, reply.message_id)
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
            message_id=reply.message_id,
            # Cut short without the API's count: the estimate stored (and counted against the quota).
            usage=outcome.get("usage") or outcome.get("usage_stored"),
            finish_reason=outcome["finish_reason"],
            served_models=reply.served_models,
            handoff_offsets=reply.handoff_offsets,
        )
    text = protocol.dumps(frame)
    await room.broadcast(text)
    instance.reply_log.end(reply.message_id, text)
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
        "served_models": reply.served_models,
        "handoff_offsets": reply.handoff_offsets,
        **outcome,
    }
    fields["usage"] = fields.pop("usage_stored", None) or outcome.get("usage")
    fields["cost"] = reply_cost(fields["usage"], reply.prices)
    try:
        held = await db_call_patient(replies.reply_finish, budget=END_STORE_SECONDS, **fields)
        return outcome if held else None
    except (OperationalError, InterfaceError):
        raise
    except DatabaseError:
        logger.exception("reply end refused by the database", extra={"message_id": reply.message_id})
    fields.update(tools=[], usage=None, cost=None, **INTERNAL_ERROR_OUTCOME)
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
