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
from ..chat.reply_end import INTERNAL_ERROR_TEXT, ReplyEnd
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
    first_text_at: float | None = None  # when its first text was read (a thinking model's thought ended)
    flushes: int = 0


@dataclass(slots=True)
class Durable:
    """How much of a local reply survives this instance: while every write to its log succeeded, all
    it received (the log holds it, and a reply stored as lost keeps what its log holds); after a failed
    or late write, a gap that a lost reply's stored text stops at, so what the database holds (`saved`,
    flushed at once and then every CHAT_FLUSH_INTERVAL)."""

    log_whole: bool = True
    saved: int = 0
    saved_reasoning: int = 0

    def until(self, reply: live.LiveReply) -> int:
        return reply.length if self.log_whole else self.saved

    def reasoning_until(self, reply: live.LiveReply) -> int:
        return len(reply.reasoning) if self.log_whole else self.saved_reasoning


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
    instance.reply_log.start(reply.message_id)
    run = ReplyRun(room=room, reply=reply, turn=turn, instance=instance)
    metrics.REPLIES_IN_FLIGHT.inc()
    end = await run.stream()
    # Shielded: a second cancellation (shutdown) must not lose the final text.
    await asyncio.shield(run.finish(end))
    first_turn = turn.user_message is not None and turn.user_message["parent_id"] is None
    if end is not None and end.status == Message.Status.COMPLETE and title_wanted(first_turn=first_turn):
        # After `done`, in a task of its own: the title never delays the reply nor the next turn.
        instance.reply_task_start(
            title_write(instance, room.ref, question=turn.user_message["content"], answer=reply.text()),
            name=f"title-{reply.message_id}",
        )


class ReplyRun:
    """One local reply on its way: `stream` reads it from upstream, `publish` shows and logs each span
    of its text (and `flush` saves it every flush interval), `reasoning_publish` each span of its
    reasoning, `tool_publish` each tool call, and `finish` stores how it ended and tells every socket,
    here and (through the log) elsewhere."""

    __slots__ = (
        "chunk_interval",
        "chunks_relayed",
        "durable",
        "instance",
        "log",
        "loop",
        "next_flush",
        "reply",
        "room",
        "stats",
        "tool_calls",
        "turn",
    )

    def __init__(
        self, *, room: live.ConversationRoom, reply: live.LiveReply, turn: turns.Turn, instance: Instance
    ) -> None:
        self.room, self.reply, self.turn, self.instance = room, reply, turn, instance
        self.log = instance.reply_log
        self.loop = asyncio.get_running_loop()
        self.stats = ReplyStats(model=turn.model, started=self.loop.time())
        self.durable = Durable()
        self.next_flush = self.stats.started + settings.CHAT_FLUSH_INTERVAL
        self.chunk_interval = settings.CHAT_CHUNK_INTERVAL_MS / 1000
        self.chunks_relayed = metrics.CHUNKS_RELAYED.labels(turn.model)
        self.tool_calls: list[dict[str, Any]] = []  # the API client's tools the reply called, at its end

    async def stream(self) -> ReplyEnd | None:
        """Relay the reply from upstream until it ends; return how it ended (None: another instance
        stored it as lost, or it was stopped as lost)."""
        reply = self.reply
        try:
            finish_reason, usage = await self._relay()
        except LeaseLost:
            return None
        except asyncio.CancelledError:
            if reply.stop_reason == "lost":
                return None
            return self.end(Message.Status.INTERRUPTED, reply.stop_reason or "interrupted")
        except ChatError as exc:
            return self.end(
                Message.Status.ERROR,
                "error",
                error_code=exc.code,
                error=exc.message,
                retry_after=exc.details.get("retry_after"),
            )
        except Exception:
            logger.exception(
                "reply failed", extra={"session_id": self.turn.ref.session_id, "message_id": reply.message_id}
            )
            return self.end(
                Message.Status.ERROR, "error", error_code="internal_error", error=INTERNAL_ERROR_TEXT
            )
        return self.end(Message.Status.COMPLETE, finish_reason, usage=usage)

    async def _relay(self) -> tuple[str, dict[str, int] | None]:
        """Hand each of the reply's events from upstream on, the files its messages carry read first;
        return why it ended and the usage the upstream reported."""
        reply, turn, stats = self.reply, self.turn, self.stats
        finish_reason, usage = "stop", None
        messages = await _request_messages(turn, self.instance)
        async for event in upstream.reply_stream(
            self.instance.upstream(),
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
                stats.first_event_at = self.loop.time()
                metrics.UPSTREAM_FIRST_TOKEN.observe(stats.first_event_at - stats.started)
            if isinstance(event, upstream.TextDelta):
                if event.text:
                    await self.publish(event.text, event.received_at)
            elif isinstance(event, upstream.ReasoningDelta):
                await self.reasoning_publish(event.text)
            elif isinstance(event, upstream.ToolActivity):
                await self.tool_publish(event)
            elif isinstance(event, upstream.ToolCalls):
                self.tool_calls = event.calls  # stored and told with the reply's end
            else:
                finish_reason, usage = event.reason or "stop", event.usage
        return finish_reason, usage

    async def publish(self, text: str, received_at: float) -> None:
        """Take a span of text: log it for the other instances, show it on every socket here once it is
        durable, within the lease, and save it when a flush is due."""
        reply, loop, durable = self.reply, self.loop, self.durable
        taken = loop.time()
        offset = reply.append(text)
        if not offset:
            self.stats.first_text_at = received_at  # a model that thought stopped thinking here
        # Shown once durable: a socket never holds text that a lost reply's stored text lacks.
        logged = self.log.text(reply.message_id, offset, text, urgent=not offset)
        if durable.log_whole and not await logged:
            durable.log_whole = False
            self.next_flush = taken  # the database holds it now, and then every flush interval
        if loop.time() >= reply.lease_deadline:
            await lease_renew(reply, self.instance)
        await self.room.text_show(reply, durable.until(reply))
        now = loop.time()
        metrics.RELAY_DELAY.observe(now - received_at)
        self.chunks_relayed.inc()
        if now >= self.next_flush:
            await self.flush(now)
        rest = self.chunk_interval - (loop.time() - taken)
        if rest > 0:
            # The next read takes whatever arrived meanwhile: one frame instead of one per token.
            await asyncio.sleep(rest)

    async def reasoning_publish(self, text: str) -> None:
        """Take a span of reasoning: log it, show it on every socket here once it is durable (as text
        is), and save it when a flush is due."""
        reply, loop, durable = self.reply, self.loop, self.durable
        taken = loop.time()
        offset = reply.reasoning_append(text)
        logged = self.log.reasoning(reply.message_id, offset, text, urgent=not offset)
        if durable.log_whole and not await logged:
            durable.log_whole = False
            self.next_flush = taken
        if loop.time() >= reply.lease_deadline:
            await lease_renew(reply, self.instance)
        await self.room.reasoning_show(reply, durable.reasoning_until(reply))
        if loop.time() >= self.next_flush:
            await self.flush(loop.time())
        rest = self.chunk_interval - (loop.time() - taken)
        if rest > 0:
            await asyncio.sleep(rest)

    async def flush(self, now: float) -> None:
        """Save the text so far (a crash loses at most one flush interval), which renews the lease and
        makes that text durable. Raise LeaseLost when this instance no longer holds the reply."""
        reply = self.reply
        self.next_flush = now + settings.CHAT_FLUSH_INTERVAL
        self.stats.flushes += 1
        content, reasoning = reply.text(), reply.reasoning
        if not await db_call(replies.reply_flush)(
            reply_id=reply.message_id,
            content=content,
            reasoning=reasoning,
            streamed_by=self.instance.instance_id,
        ):
            raise LeaseLost
        reply.lease_renewed(now)
        self.durable.saved, self.durable.saved_reasoning = len(content), len(reasoning)
        if reasoning:
            await self.room.reasoning_show(reply, self.durable.reasoning_until(reply))
        await self.room.text_show(reply, self.durable.until(reply))

    async def tool_publish(self, event: upstream.ToolActivity) -> None:
        """Show a tool call or its result on every socket here, then log it for the other instances."""
        reply = self.reply
        if self.loop.time() >= reply.lease_deadline:
            await lease_renew(reply, self.instance)
        activity = asdict(event)
        frame = protocol.dumps(protocol.tool_frame(message_id=reply.message_id, activity=activity))
        await self.room.tool_publish(reply, activity, frame)
        self.log.frame(reply.message_id, frame)

    def end(
        self,
        status: str,
        finish_reason: str,
        *,
        usage: dict[str, int] | None = None,
        error_code: str = "",
        error: str = "",
        retry_after: int | None = None,
    ) -> ReplyEnd:
        """How the reply ended, with the models that wrote it and how long it thought. Cut short without
        the upstream's count, what was streamed is estimated: it still counts against the quota."""
        reply = self.reply
        estimated = not usage and reply.length > 0
        if estimated:
            usage = quotas.usage_estimate(prompt=self.turn.upstream_messages, reply=reply.text())
        return ReplyEnd(
            reasoning_ms=self._reasoning_ms(usage),
            status=status,
            finish_reason=finish_reason,
            usage=usage or None,
            usage_estimated=estimated,
            error_code=error_code,
            error=error,
            retry_after=retry_after,
            served_models=tuple(reply.served_models),
            handoff_offsets=tuple(reply.handoff_offsets),
            tool_calls=tuple(self.tool_calls) if status == Message.Status.COMPLETE else (),
        )

    def _reasoning_ms(self, usage: dict[str, int] | None) -> int | None:
        """How long the model thought, from the request until its first text (or its end, when no text
        came): None when it did not think, as far as its reasoning and its usage's reasoning tokens say."""
        if not self.reply.reasoning and not (usage or {}).get("reasoning_tokens"):
            return None
        until = self.stats.first_text_at or self.loop.time()
        return max(0, round((until - self.stats.started) * 1000))

    async def finish(self, end: ReplyEnd | None) -> None:
        """Store the reply's end, then tell every socket, here and (through the log) elsewhere.

        The end frame is sent on every path: when the reply was lost to another instance (`end` None, or
        the store found it taken), after the stored history; when its end could not be stored, as
        `internal_error` (the reply's lease then lapses and another instance stores it as lost). Text not
        shown yet is shown before the end only when the end stored it.
        """
        room, reply, instance = self.room, self.reply, self.instance
        stored: ReplyEnd | None = None
        reply.ending = True
        try:
            if end is not None:
                try:
                    stored = await self._end_store(end)
                except Exception:
                    logger.exception("reply end not stored", extra={"message_id": reply.message_id})
                    stored = end.failed_internally()
                else:
                    if stored is not None:  # stored with the end: durable now
                        await room.reasoning_show(reply, len(reply.reasoning))
                        await room.text_show(reply, reply.length)
        finally:
            instance.rooms.reply_end(room, reply)
            metrics.REPLIES_IN_FLIGHT.dec()
        if stored is None:
            await self._lost_tell()
            return
        text = protocol.dumps(stored.frame(reply.message_id))
        await room.broadcast(text)
        instance.reply_log.end(reply.message_id, text)
        self._account(stored)

    async def _lost_tell(self) -> None:
        """Tell every socket here how a reply another instance stored as lost ended: the stored history
        (they may hold text that was not stored), then the end its row says."""
        room, reply = self.room, self.reply
        logger.warning("reply lost to another instance", extra={"message_id": reply.message_id})
        try:
            await history_broadcast(self.instance, room.ref)
            row = await db_call(selectors.reply_stored)(reply_id=reply.message_id)
            frame = selectors.reply_end_frame(row, reply.message_id)
        except Exception:
            logger.exception("lost reply's stored state unreadable", extra={"message_id": reply.message_id})
            frame = protocol.done_frame(message_id=reply.message_id, usage=None, finish_reason="server_lost")
        await room.broadcast(protocol.dumps(frame))

    async def _end_store(self, end: ReplyEnd) -> ReplyEnd | None:
        """Store how the reply ended, retried while the database is away; a row that refuses the values
        is stored as an `internal_error` with its text. Return the end stored, or None when another
        instance holds the reply."""
        reply = self.reply
        store = functools.partial(
            db_call_patient,
            replies.reply_finish,
            budget=END_STORE_SECONDS,
            reply_id=reply.message_id,
            streamed_by=self.instance.instance_id,
            content=reply.text(),
            reasoning=reply.reasoning,
        )
        try:
            held = await store(end=end, tools=reply.tools, cost=reply_cost(end.usage, reply.prices))
            return end if held else None
        except (OperationalError, InterfaceError):
            raise
        except DatabaseError:
            logger.exception("reply end refused by the database", extra={"message_id": reply.message_id})
        failed = end.failed_internally()
        held = await store(end=failed, tools=[], cost=None)
        return failed if held else None

    def _account(self, end: ReplyEnd) -> None:
        """One metrics update and one structured log line per reply (never its text)."""
        stats = self.stats
        ended = self.loop.time()
        usage = end.usage_reported
        metrics.REPLIES_FINISHED.labels(end.status).inc()
        metrics.DB_FLUSHES.observe(stats.flushes)
        if usage.get("completion_tokens"):
            metrics.TOKENS_RELAYED.labels(stats.model).inc(usage["completion_tokens"])
        if end.error_code.startswith("upstream_"):
            metrics.UPSTREAM_ERRORS.labels(end.error_code).inc()
        first = stats.first_event_at
        logger.info(
            "reply ended",
            extra={
                "session_id": self.room.ref.session_id,
                "message_id": self.reply.message_id,
                "model": stats.model,
                "status": end.status,
                "finish_reason": end.finish_reason,
                "error_code": end.error_code or None,
                "chars": self.reply.length,
                "prompt_tokens": usage.get("prompt_tokens"),
                "completion_tokens": usage.get("completion_tokens"),
                "first_token_ms": round((first - stats.started) * 1000, 1) if first is not None else None,
                "duration_ms": round((ended - stats.started) * 1000, 1),
                "db_flushes": stats.flushes,
            },
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
