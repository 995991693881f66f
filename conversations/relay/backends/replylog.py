"""The ordered log of a reply in flight, so any server instance can replay and follow it.

With Redis, the log is a Redis Stream (pub/sub is at-most-once, so it cannot be the replay buffer):
the instance streaming a reply appends every batch of text (with its offset), of reasoning (with an
offset of its own), every tool frame and the final frame to the stream `<prefix>:reply:<message id>`;
an instance with a socket on that conversation reads it from the start and then follows it. One writer
task per process sends everything pending in one pipeline, so under load many replies' entries share a
round trip. The stream expires after the reply ended. Without Redis there is one process, whose sockets
get every frame from the live reply itself: nothing needs logging.

Appending text returns a future that says when the entry is in Redis: the streaming instance shows its
own sockets only text the log holds (a reply stored as lost keeps what its log holds), as a Kafka
consumer sees only what is replicated. A reply's first text skips the batching wait, and its write starts
at once when fewer than WRITES_IN_FLIGHT are on their way.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis.asyncio as redis_asyncio
from django.conf import settings
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


# Batches sent at once, each on a connection of its own: a reply waiting for its text to be logged waits
# for the next batch, not for the one before it too. A reply has one text entry on its way at a time, so
# its text entries reach the stream in order whatever order the batches land in.
WRITES_IN_FLIGHT = 2


def log_key(reply_id: int) -> str:
    return f"{settings.CHAT_REDIS_PREFIX}:reply:{reply_id}"


def fence_key(reply_id: int) -> str:
    """Set when another instance takes the reply over (stores it as lost): its writer appends no more."""
    return f"{settings.CHAT_REDIS_PREFIX}:reply:{reply_id}:fenced"


# The writer's text, reasoning and tool entries are appended only while the log is not fenced, in one
# step Redis runs atomically: an entry lands before the fence (and the instance storing the reply as
# lost reads it) or is refused (and never shown anywhere). A frozen writer's late batch cannot add text
# after the reply was stored without it.
_APPEND_UNLESS_FENCED = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('XADD', KEYS[1], '*', unpack(ARGV))
return 1
"""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry: text at an offset (`kind="text"`), reasoning at an offset of its own
    (`kind="reasoning"`), a tool frame, or the final frame (`kind="end"`)."""

    entry_id: str
    kind: str
    offset: int = 0
    text: str = ""
    frame: str = ""


def _entry_from_fields(entry_id: bytes, fields: dict[bytes, bytes]) -> LogEntry:
    kind = fields.get(b"k", b"").decode()
    if kind == "t":
        return LogEntry(entry_id.decode(), "text", int(fields[b"o"]), fields[b"x"].decode())
    if kind == "r":
        return LogEntry(entry_id.decode(), "reasoning", int(fields[b"o"]), fields[b"x"].decode())
    return LogEntry(entry_id.decode(), "tool" if kind == "f" else "end", frame=fields.get(b"j", b"").decode())


class LoggedReply(NamedTuple):
    """What a reply's log shows any follower: its text and its reasoning, each up to its first gap."""

    text: str = ""
    reasoning: str = ""


class ReplyLogUnreadable(Exception):
    """The log could not be read right now (Redis is down)."""


class ReplyLog(ABC):
    """Where the instance streaming a reply logs it, and where other instances read it (a backend lacking
    a method cannot be constructed)."""

    @property
    @abstractmethod
    def shared(self) -> bool:
        """True when other instances may follow replies from this log; False in a single process, where a
        reply streaming with no task of this process was its server's before a restart."""

    @abstractmethod
    def start(self, reply_id: int) -> None: ...

    @abstractmethod
    def text(self, reply_id: int, offset: int, text: str, *, urgent: bool = False) -> asyncio.Future[bool]:
        """Append text at `offset`; the future says True once the entry is in the log, False when its
        write failed. `urgent` sends it without the batching wait (a reply's first text)."""

    @abstractmethod
    def reasoning(
        self, reply_id: int, offset: int, text: str, *, urgent: bool = False
    ) -> asyncio.Future[bool]:
        """Append reasoning at `offset` (of the reasoning), as `text` appends text."""

    @abstractmethod
    def frame(self, reply_id: int, frame_text: str) -> None: ...
    @abstractmethod
    def end(self, reply_id: int, frame_text: str) -> None: ...
    @abstractmethod
    async def drained(self) -> None: ...
    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def read(self, reply_id: int, after: str, *, block_ms: int | None = None) -> list[LogEntry]:
        """The entries after entry id `after` ("0-0" for all), waiting up to `block_ms` for one; raise
        ReplyLogUnreadable."""

    @abstractmethod
    async def fenced_shown(self, reply_id: int) -> LoggedReply:
        """Fence the log against its writer's appends, then return the reply's text and reasoning up to
        the log's first gap in each (what any follower was shown), for the instance storing the reply as
        lost. Raise ReplyLogUnreadable."""

    @abstractmethod
    async def unfence(self, reply_id: int) -> None:
        """Lift the fence of a reply that was not lost after all (its writer renewed in time)."""


class LocalReplyLog(ReplyLog):
    """One process: nobody follows a reply from elsewhere, so nothing is logged."""

    shared = False

    def start(self, reply_id: int) -> None:
        pass

    def text(self, reply_id: int, offset: int, text: str, *, urgent: bool = False) -> asyncio.Future[bool]:
        # Nobody else reads it: the process holding the sockets is the only one that could lose it.
        written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        written.set_result(True)
        return written

    def reasoning(
        self, reply_id: int, offset: int, text: str, *, urgent: bool = False
    ) -> asyncio.Future[bool]:
        return self.text(reply_id, offset, text)

    def frame(self, reply_id: int, frame_text: str) -> None:
        pass

    def end(self, reply_id: int, frame_text: str) -> None:
        pass

    async def drained(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def read(self, reply_id: int, after: str, *, block_ms: int | None = None) -> list[LogEntry]:
        return []

    async def fenced_shown(self, reply_id: int) -> LoggedReply:
        return LoggedReply()

    async def unfence(self, reply_id: int) -> None:
        pass


class RedisReplyLog(ReplyLog):
    """Reply logs in Redis Streams; appending never waits for Redis (one writer task sends them), and
    text says through a future when it was written."""

    shared = True

    def __init__(self, client: redis_asyncio.Redis) -> None:
        self.client = client
        self._loop = asyncio.get_running_loop()
        self._pending: list[tuple[int, dict[str, str], int | None]] = []
        self._waiting: list[tuple[int, asyncio.Future[bool]]] = []  # pending text entries' replies, futures
        self._late: asyncio.TimerHandle | None = None  # when they stop waiting
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._urgent = False
        self._nap: asyncio.Future[None] | None = None  # the batching wait, cut short by urgent text
        self._writing: set[asyncio.Task[None]] = set()  # batches on their way, at most WRITES_IN_FLIGHT
        self._task = asyncio.create_task(self._run(), name="reply-log-writer")

    def text(self, reply_id: int, offset: int, text: str, *, urgent: bool = False) -> asyncio.Future[bool]:
        return self._logged(reply_id, {"k": "t", "o": str(offset), "x": text}, urgent)

    def reasoning(
        self, reply_id: int, offset: int, text: str, *, urgent: bool = False
    ) -> asyncio.Future[bool]:
        return self._logged(reply_id, {"k": "r", "o": str(offset), "x": text}, urgent)

    def _logged(self, reply_id: int, fields: dict[str, str], urgent: bool) -> asyncio.Future[bool]:
        """Append an entry whose future says when it is in the log (text, reasoning)."""
        # One future per entry, not per batch: a reply task cancelled while it waits cancels only its own.
        written: asyncio.Future[bool] = self._loop.create_future()
        if not self._waiting:
            # A Redis that hangs must not hold the replies' sockets for the command timeout: past the
            # wait, their text counts as unlogged (it is shown once the database holds it).
            self._late = self._loop.call_later(
                settings.CHAT_REPLY_LOG_WAIT_SECONDS, _written_set, self._waiting, False
            )
        self._waiting.append((reply_id, written))
        self._append(reply_id, fields)
        if urgent and len(self._writing) < WRITES_IN_FLIGHT:
            # Sent from here: a trip through the writer task would be one more turn of a busy event loop
            # before the reply's first words are shown.
            self._batch_send()
        elif urgent:
            self._urgent = True
            _nap_end(self._nap)
        return written

    def frame(self, reply_id: int, frame_text: str) -> None:
        self._append(reply_id, {"k": "f", "j": frame_text})

    def end(self, reply_id: int, frame_text: str) -> None:
        """The reply's final frame; the log then expires after CHAT_REPLY_LOG_KEEP_SECONDS."""
        self._append(reply_id, {"k": "e", "j": frame_text}, settings.CHAT_REPLY_LOG_KEEP_SECONDS)

    def start(self, reply_id: int) -> None:
        """Open the log with an empty text entry, so its expiry is set before anything else."""
        self._append(reply_id, {"k": "t", "o": "0", "x": ""}, settings.CHAT_REPLY_LOG_TTL_SECONDS)

    def _append(self, reply_id: int, fields: dict[str, str], expire: int | None = None) -> None:
        self._pending.append((reply_id, fields, expire))
        self._idle.clear()
        self._wake.set()

    async def drained(self) -> None:
        """Wait until everything appended so far was sent (or dropped after a Redis error)."""
        await self._idle.wait()

    async def close(self) -> None:
        self._task.cancel()
        for write in self._writing:
            write.cancel()
        await asyncio.gather(self._task, *self._writing, return_exceptions=True)
        if self._late is not None:
            self._late.cancel()
        _written_set(self._waiting, False)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if settings.CHAT_REPLY_LOG_BATCH_MS > 0 and not self._urgent:
                self._nap = self._loop.create_future()
                timer = self._loop.call_later(settings.CHAT_REPLY_LOG_BATCH_MS / 1000, _nap_end, self._nap)
                try:
                    await self._nap
                finally:
                    timer.cancel()
                    self._nap = None
            if len(self._writing) >= WRITES_IN_FLIGHT:
                await asyncio.wait(self._writing, return_when=asyncio.FIRST_COMPLETED)
            self._wake.clear()
            if self._pending:  # an urgent text may have sent them meanwhile
                self._batch_send()

    def _batch_send(self) -> None:
        """Send everything pending as one batch, in a write task of its own."""
        self._urgent = False
        batch, self._pending = _texts_merged(self._pending), []
        waiting, self._waiting = self._waiting, []
        late, self._late = self._late, None
        self._writing.add(asyncio.create_task(self._write(batch, waiting, late), name="reply-log-write"))

    async def _write(
        self,
        batch: list[tuple[int, dict[str, str], int | None]],
        waiting: list[tuple[int, asyncio.Future[bool]]],
        late: asyncio.TimerHandle | None,
    ) -> None:
        """Send one batch, then tell its text entries' futures (False for a reply whose log was fenced:
        another instance took it over)."""
        written, fenced = False, set()
        try:
            written, fenced = await self._send(batch)
        finally:
            if late is not None:
                late.cancel()
            _written_set(waiting, written, fenced)
            self._writing.discard(asyncio.current_task())  # type: ignore[arg-type]
            if not self._pending and not self._writing:
                self._idle.set()

    async def _send(self, batch: list[tuple[int, dict[str, str], int | None]]) -> tuple[bool, set[int]]:
        """Send entries in one pipeline; return whether it was written, and the replies whose log was
        fenced (their text and tool entries refused)."""
        pipe = self.client.pipeline(transaction=False)
        guarded: list[tuple[int, int]] = []  # (index of the command's result, reply id)
        commands = 0
        for reply_id, fields, expire in batch:
            key = log_key(reply_id)
            if fields["k"] in ("t", "r", "f") and expire is None:  # the writer's entries, not start/end
                args = [item for pair in fields.items() for item in pair]
                # EVAL, not EVALSHA: a pipeline of scripts would ask SCRIPT EXISTS first, a round trip
                pipe.eval(_APPEND_UNLESS_FENCED, 2, key, fence_key(reply_id), *args)
                guarded.append((commands, reply_id))
            else:
                if fields["k"] == "t":  # a reply's start: no fence of an earlier reply of that id stays
                    pipe.delete(fence_key(reply_id))
                    commands += 1
                pipe.xadd(key, fields)
            commands += 1
            if expire is not None:
                pipe.expire(key, expire)
                commands += 1
        try:
            results = await pipe.execute()
        except (RedisError, OSError):
            # These entries are missing from the log: other instances' followers fall back to the
            # stored row, and the writer shows its own sockets this text once the row holds it.
            logger.warning("reply log write failed", extra={"entries": len(batch)}, exc_info=True)
            return False, set()
        return True, {reply_id for index, reply_id in guarded if not results[index]}

    async def read(self, reply_id: int, after: str, *, block_ms: int | None = None) -> list[LogEntry]:
        try:
            return await log_read(self.client, reply_id, after, block_ms=block_ms)
        except (RedisError, OSError) as exc:
            raise ReplyLogUnreadable from exc

    async def fenced_shown(self, reply_id: int) -> LoggedReply:
        try:
            await self.client.set(fence_key(reply_id), "1", ex=settings.CHAT_REPLY_LOG_TTL_SECONDS)
            return await log_shown(self.client, reply_id)
        except (RedisError, OSError) as exc:
            raise ReplyLogUnreadable from exc

    async def unfence(self, reply_id: int) -> None:
        try:
            await self.client.delete(fence_key(reply_id))
        except (RedisError, OSError):  # the fence expires; meanwhile the writer shows from its row
            logger.warning("reply log fence not lifted", extra={"message_id": reply_id}, exc_info=True)


def _nap_end(nap: asyncio.Future[None] | None) -> None:
    if nap is not None and not nap.done():
        nap.set_result(None)


def _written_set(
    waiting: list[tuple[int, asyncio.Future[bool]]], written: bool, fenced: Collection[int] = ()
) -> None:
    for reply_id, future in waiting:
        if not future.done():  # its reply task was cancelled meanwhile
            future.set_result(written and reply_id not in fenced)


def _texts_merged(
    pending: list[tuple[int, dict[str, str], int | None]],
) -> list[tuple[int, dict[str, str], int | None]]:
    """Merge each reply's adjacent text entries into one (offset of the first, texts joined)."""
    merged: list[tuple[int, dict[str, str], int | None]] = []
    last_text: dict[int, int] = {}  # reply id -> index in `merged` of its latest entry, if it is text
    for reply_id, fields, expire in pending:
        index = last_text.get(reply_id)
        if fields["k"] == "t" and expire is None and index is not None:
            merged[index][1]["x"] += fields["x"]
            continue
        merged.append((reply_id, dict(fields), expire))
        if fields["k"] == "t" and expire is None:
            last_text[reply_id] = len(merged) - 1
        else:
            last_text.pop(reply_id, None)
    return merged


async def log_read(
    client: redis_asyncio.Redis, reply_id: int, after: str, *, block_ms: int | None = None
) -> list[LogEntry]:
    """Return the entries after entry id `after` ("0-0" for all), waiting up to `block_ms` for one."""
    response: Any = await client.xread({log_key(reply_id): after}, count=1000, block=block_ms)
    entries: list[LogEntry] = []
    for _key, items in response or ():
        entries.extend(_entry_from_fields(entry_id, fields) for entry_id, fields in items)
    return entries


async def log_text(client: redis_asyncio.Redis, reply_id: int) -> str:
    """The reply's text as its log holds it, from the start up to the first gap."""
    return (await log_shown(client, reply_id)).text


async def log_shown(client: redis_asyncio.Redis, reply_id: int) -> LoggedReply:
    """The reply's text and reasoning as its log holds them, each from the start up to its first gap
    (what any follower was shown, since followers never cross a gap)."""
    shown = {"text": "", "reasoning": ""}
    gapped: set[str] = set()
    after = "0-0"
    while True:
        entries = await log_read(client, reply_id, after)
        for entry in entries:
            after = entry.entry_id
            so_far = shown.get(entry.kind)
            if so_far is None or entry.kind in gapped:
                continue
            if entry.offset > len(so_far):
                gapped.add(entry.kind)
                continue
            shown[entry.kind] = so_far + entry.text[len(so_far) - entry.offset :]
        if not entries or len(gapped) == len(shown):
            return LoggedReply(shown["text"], shown["reasoning"])
