"""The load generator: WebSocket clients in this process that send stamped messages, check every token of
every reply they read, and time it (relay latency, time to first token, `start` frame)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from tests.processes import HOST, HttpServer

MODEL = "openai/gpt-5.1"
# Handshakes in flight at once while the idle sockets open (Daphne refuses a handshake after 5 s).
IDLE_CONNECT_CONCURRENCY = 100


@dataclasses.dataclass(frozen=True)
class Load:
    """What the clients do: `clients` sockets (conversations), each sending `turns` messages one after the
    other, each asking the stand-in for `tokens` stamped tokens `delay_ms` apart; a turn without its end
    after `turn_timeout` seconds is an error and ends that client."""

    clients: int
    turns: int
    tokens: int
    delay_ms: float
    turn_timeout: float

    @property
    def expected_tokens(self) -> int:
        return self.clients * self.turns * self.tokens

    def message(self) -> str:
        directive = f"[[standin stamp=1 tokens={self.tokens} delay_ms={self.delay_ms:g}]]"
        return orjson.dumps({"message": f"bench {directive}", "model": MODEL}).decode()


def socket_url(server: HttpServer, session_id: str) -> str:
    """The original page's socket path, which every server of the bench serves (ours without a cookie)."""
    return f"ws://{HOST}:{server.port}/ws/{session_id}"


@dataclasses.dataclass
class LoadStats:
    latencies_us: list[int] = dataclasses.field(default_factory=list)
    # Followers only: tokens the stand-in sent after the follower's `start` frame (the live path, without
    # the backlog a late `start` makes it catch up on).
    live_latencies_us: list[int] = dataclasses.field(default_factory=list)
    tokens: int = 0
    turns_ok: int = 0
    missing_tokens: int = 0
    duplicate_tokens: int = 0
    offset_breaks: int = 0  # chunk frames whose offset was not where the previous chunk ended
    chunk_frames: int = 0
    first_token_ms: list[float] = dataclasses.field(default_factory=list)  # send -> first chunk, per turn
    start_ms: list[float] = dataclasses.field(default_factory=list)  # (sender's) send -> `start` frame
    errors: Counter = dataclasses.field(default_factory=Counter)
    samples: list[str] = dataclasses.field(default_factory=list)  # a few details of what went wrong

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def sample(self, text: str) -> None:
        if len(self.samples) < 10:
            self.samples.append(text)

    @classmethod
    def merged(cls, parts: list[LoadStats]) -> LoadStats:
        out = cls()
        for part in parts:
            out.latencies_us += part.latencies_us
            out.live_latencies_us += part.live_latencies_us
            out.tokens += part.tokens
            out.turns_ok += part.turns_ok
            out.missing_tokens += part.missing_tokens
            out.duplicate_tokens += part.duplicate_tokens
            out.offset_breaks += part.offset_breaks
            out.chunk_frames += part.chunk_frames
            out.first_token_ms += part.first_token_ms
            out.start_ms += part.start_ms
            out.errors += part.errors
            out.samples += part.samples[: max(0, 10 - len(out.samples))]
        return out


@dataclasses.dataclass(slots=True)
class ReplyTrack:
    """One reply as one socket saw it: which token indices arrived, and whether the chunk offsets ran on."""

    tokens: int
    counts: bytearray
    tail: str = ""  # a token split across chunks, kept for the next one
    chars: int = 0  # where the next chunk must start: the text received so far
    offset_breaks: int = 0
    started: bool = False  # a `start` frame arrived (checked for followers)
    done: bool = False
    first_chunk_us: int = 0
    start_us: int = 0

    @classmethod
    def new(cls, tokens: int) -> ReplyTrack:
        return cls(tokens, bytearray(tokens))

    def chunk(self, frame: dict[str, Any], now_us: int, stats: LoadStats) -> None:
        content = frame["content"]
        offset = frame.get("offset")  # ours only; the baselines send none
        if offset is not None:
            if offset != self.chars:
                self.offset_breaks += 1
                stats.sample(
                    f"message {frame.get('message_id')}: chunk at offset {offset}, expected {self.chars}"
                )
            self.chars = offset + len(content)
        else:
            self.chars += len(content)
        stats.chunk_frames += 1
        if not self.first_chunk_us:
            self.first_chunk_us = now_us
        parts = (self.tail + content).split(" ")
        self.tail = parts.pop()  # a token ends with a space; keep a split one for later
        latencies, counts, tokens = stats.latencies_us, self.counts, self.tokens
        for part in parts:
            if not part:
                continue
            index, _, stamp = part.partition("@")
            try:
                i, sent_us = int(index), int(stamp)
            except ValueError:
                stats.errors["unparsable token"] += 1
                stats.sample(f"message {frame.get('message_id')}: unparsable token {part[:40]!r}")
                continue
            latencies.append(now_us - sent_us)
            if self.start_us and sent_us >= self.start_us:
                stats.live_latencies_us.append(now_us - sent_us)
            if 0 <= i < tokens:
                if counts[i] < 255:
                    counts[i] += 1
            else:
                stats.errors["token index out of range"] += 1

    def turn_end(self, stats: LoadStats, *, sent_ns: int, failed: str | None) -> bool:
        """A sender's turn is over (sent at `sent_ns`): count its first token, its tokens and whether it
        failed (`failed` says how) or came clean. Return whether the client may go on."""
        if self.first_chunk_us:
            stats.first_token_ms.append((self.first_chunk_us * 1000 - sent_ns) / 1e6)
        clean = self.settle(stats, failed=failed is not None)
        if failed:
            stats.errors[failed] += 1
            return False
        if clean:
            stats.turns_ok += 1
        return True

    def settle(self, stats: LoadStats, *, failed: bool) -> bool:
        """Add this reply's tokens to `stats`; unless the turn already failed, count its gaps, duplicates
        and offset breaks as errors. Return True for a clean reply."""
        missing = self.counts.count(0)
        stats.tokens += self.tokens - missing
        if failed:
            return False
        dups = sum(c - 1 for c in self.counts if c > 1)
        clean = True
        if missing or dups:
            stats.missing_tokens += missing
            stats.duplicate_tokens += dups
            stats.errors["gaps or duplicates in a turn"] += 1
            clean = False
        if self.offset_breaks:
            stats.offset_breaks += self.offset_breaks
            stats.errors["non-contiguous chunk offsets in a turn"] += 1
            clean = False
        return clean


async def client_connect(
    session: aiohttp.ClientSession,
    server: HttpServer,
    sid: str,
    stats: LoadStats,
    limit_s: float,
    *,
    history: bool = False,
):
    """Open a socket; with `history`, also wait for its first frame, which must be `history` (ours)."""
    ws = None
    try:
        async with asyncio.timeout(limit_s):
            ws = await session.ws_connect(
                socket_url(server, sid), headers={"Origin": server.origin}, max_msg_size=0, autoping=True
            )
            if history:
                msg = await ws.receive()
                kind = orjson.loads(msg.data).get("type") if msg.type is aiohttp.WSMsgType.TEXT else None
                if kind != "history":
                    raise RuntimeError(f"first frame {msg.type.name} {kind!r}, not history")
            return ws
    except Exception as exc:
        stats.errors[f"connect: {type(exc).__name__} {str(exc)[:80]}"] += 1
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        return None


@dataclasses.dataclass
class PairConversation:
    """One conversation of the `pair` scenario: what its sender started, what its follower saw."""

    turns: int
    reply_ids: list[int] = dataclasses.field(default_factory=list)  # from the sender's `start` frames
    sent_ns: dict[int, int] = dataclasses.field(default_factory=dict)  # reply id -> the sender's send time
    sender_finished: bool = False
    tracks: dict[int, ReplyTrack] = dataclasses.field(default_factory=dict)  # the follower's, by reply id
    follower_done: set[int] = dataclasses.field(default_factory=set)
    follower_failure: str = ""  # why the follower stopped reading early, if it did

    def started(self, reply_id: Any, sent_ns: int) -> None:
        if isinstance(reply_id, int):
            self.reply_ids.append(reply_id)
            self.sent_ns[reply_id] = sent_ns

    def follower_complete(self) -> bool:
        """The follower saw the end of every reply (of all turns, or of every one the sender started)."""
        if len(self.follower_done) >= self.turns:
            return True
        return self.sender_finished and set(self.reply_ids) <= self.follower_done


async def client_turns(ws, load: Load, stats: LoadStats, conv: PairConversation | None = None):
    message = load.message()
    turn_timeout = load.turn_timeout
    text_type = aiohttp.WSMsgType.TEXT
    try:
        for _ in range(load.turns):
            track = ReplyTrack.new(load.tokens)
            failed = None
            sent_ns = time.time_ns()
            try:
                async with asyncio.timeout(turn_timeout):
                    sent_ns = time.time_ns()
                    await ws.send_str(message)
                    while True:
                        msg = await ws.receive()
                        now_us = time.time_ns() // 1000
                        if msg.type is not text_type:
                            failed = f"socket {msg.type.name.lower()} mid-turn"
                            break
                        frame = orjson.loads(msg.data)
                        kind = frame.get("type")
                        if kind == "chunk":
                            track.chunk(frame, now_us, stats)
                        elif kind == "done":
                            track.done = True
                            break
                        elif kind == "error":
                            failed = f"error frame: {frame.get('code', '')} {str(frame.get('message'))[:80]}"
                            break
                        elif kind == "start":
                            stats.start_ms.append((now_us * 1000 - sent_ns) / 1e6)
                            if conv is not None:
                                conv.started(frame.get("message_id"), sent_ns)
                        # history, start, tool: nothing to measure
            except TimeoutError:
                failed = f"turn timeout ({turn_timeout:g} s)"
            if not track.turn_end(stats, sent_ns=sent_ns, failed=failed):
                return  # the socket is in an unknown state: this client stops here
    except Exception as exc:
        stats.errors[f"client: {type(exc).__name__} {str(exc)[:80]}"] += 1
    finally:
        if conv is not None:
            conv.sender_finished = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await ws.close()


async def follower_read(ws, conv: PairConversation, tokens: int, stats: LoadStats) -> None:
    """Read a follower socket until it saw the end of every reply of its conversation."""
    text_type = aiohttp.WSMsgType.TEXT
    tracks = conv.tracks
    while True:
        msg = await ws.receive()
        now_us = time.time_ns() // 1000
        if msg.type is not text_type:
            conv.follower_failure = f"follower: socket {msg.type.name.lower()} mid-reply"
            return
        frame = orjson.loads(msg.data)
        kind = frame.get("type")
        if kind not in ("start", "chunk", "done", "error"):
            continue  # history, tool
        reply_id = frame.get("message_id")
        track = tracks.get(reply_id)
        if track is None:
            if kind == "error" and reply_id is None:
                stats.errors[f"error frame: {frame.get('code', '')} {str(frame.get('message'))[:80]}"] += 1
                continue
            track = tracks[reply_id] = ReplyTrack.new(tokens)
        if kind == "start":
            if track.started:
                stats.errors["follower: start frame twice"] += 1
            track.started = True
            track.start_us = now_us
        elif kind == "chunk":
            if track.done:
                stats.errors["follower: chunk after done"] += 1
            track.chunk(frame, now_us, stats)
        else:
            if kind == "error":
                stats.errors[f"error frame: {frame.get('code', '')} {str(frame.get('message'))[:80]}"] += 1
            track.done = True
            conv.follower_done.add(reply_id)
            if conv.follower_complete():
                return


async def pair_conversation(
    sender, follower, load: Load, sender_stats: LoadStats, follower_stats: LoadStats, sid: str = ""
) -> None:
    """Drive one conversation through its sender; read its follower until it saw every reply end."""
    conv = PairConversation(load.turns)
    tokens, turn_timeout = load.tokens, load.turn_timeout
    reading = asyncio.create_task(follower_read(follower, conv, tokens, follower_stats))
    try:
        await client_turns(sender, load, sender_stats, conv)
        if not reading.done() and not conv.follower_complete():
            # The sender is done; the follower lags by the reply log's batching and a Redis round trip.
            await asyncio.wait([reading], timeout=turn_timeout)
        if reading.done() and not reading.cancelled() and reading.exception() is not None:
            exc = reading.exception()
            conv.follower_failure = f"follower: {type(exc).__name__} {str(exc)[:80]}"
    finally:
        reading.cancel()
        with contextlib.suppress(BaseException):
            await reading
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await follower.close()
    # One error per reply the follower did not get whole (or, before any reply, per early stop).
    failure = conv.follower_failure
    if failure and not conv.reply_ids:
        follower_stats.errors[failure] += 1
    for reply_id in conv.reply_ids:
        track = conv.tracks.pop(reply_id, None)
        if track is None:
            follower_stats.errors[failure or f"follower: no frame of a reply within {turn_timeout:g} s"] += 1
            follower_stats.missing_tokens += tokens
            follower_stats.sample(f"{sid} message {reply_id}: the follower saw nothing of it")
            continue
        if track.first_chunk_us:
            follower_stats.first_token_ms.append((track.first_chunk_us * 1000 - conv.sent_ns[reply_id]) / 1e6)
        if track.start_us:
            follower_stats.start_ms.append((track.start_us * 1000 - conv.sent_ns[reply_id]) / 1e6)
        if not track.started:
            follower_stats.errors["follower: chunks without a start frame"] += 1
        clean = track.settle(follower_stats, failed=not track.done)
        if not track.done:
            follower_stats.errors[failure or f"follower: no end of a reply within {turn_timeout:g} s"] += 1
            follower_stats.missing_tokens += track.counts.count(0)
            follower_stats.sample(f"{sid} message {reply_id}: no end; {track.counts.count(0)} tokens missing")
        elif clean and track.started:
            follower_stats.turns_ok += 1
    for reply_id in conv.tracks:
        follower_stats.errors["follower: frames of a reply its sender did not start"] += 1
        follower_stats.sample(f"{sid} message {reply_id}: followed but not started by the sender")


async def run_load(server: HttpServer, load: Load, tag: str) -> tuple[LoadStats, float]:
    """Connect every client, then run every client's turns at once. Return the stats and wall seconds.

    Works for every server (the seed and the bare relay send no `history` frame)."""
    per_sid, wall = await run_stream_clients(server, load, tag, history=False)
    return LoadStats.merged(list(per_sid.values())), wall


async def run_pair_load(
    servers: tuple[HttpServer, HttpServer], load: Load, tag: str
) -> tuple[dict[tuple[str, int], LoadStats], float]:
    """Conversation i: its sender on servers[i % 2], its follower on the other one. Connect all sockets
    (each has its `history` before any message is sent), then run every conversation at once.

    Return stats keyed by ("local" | "cross", instance index) and the wall seconds.
    """
    stats = {(role, i): LoadStats() for role in ("local", "cross") for i in (0, 1)}
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        started = time.monotonic()

        async def open_pair(i: int):
            s, f = i % 2, 1 - i % 2
            sid = f"{tag}-{i}"
            return await asyncio.gather(
                client_connect(session, servers[s], sid, stats["local", s], 30, history=True),
                client_connect(session, servers[f], sid, stats["cross", f], 30, history=True),
            )

        async def converse(i: int, sender, follower) -> None:
            s, f = i % 2, 1 - i % 2
            if sender is None or follower is None:  # counted as a connect error; this conversation is off
                for ws in (sender, follower):
                    if ws is not None:
                        with contextlib.suppress(Exception):
                            await ws.close()
                return
            await pair_conversation(
                sender, follower, load, stats["local", s], stats["cross", f], f"{tag}-{i}"
            )

        pairs = await asyncio.gather(*(open_pair(i) for i in range(load.clients)))
        await asyncio.gather(*(converse(i, sender, follower) for i, (sender, follower) in enumerate(pairs)))
        wall = time.monotonic() - started
    return stats, wall


def percentile(sorted_values: list[int] | list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * (len(sorted_values) - 1) + 0.5))]


async def run_stream_clients(
    server: HttpServer, load: Load, tag: str, *, history: bool = True
) -> tuple[dict[str, LoadStats], float]:
    """Connect every client, then run every client's turns at once, with one LoadStats per socket (keyed by
    its session id), so that each socket's tokens can be charged to the instance that accepted it. With
    `history` (ours), every socket has its `history` frame before its turns."""
    per_sid = {f"{tag}-{i}": LoadStats() for i in range(load.clients)}
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        started = time.monotonic()
        sockets = await asyncio.gather(
            *(client_connect(session, server, sid, st, 30, history=history) for sid, st in per_sid.items())
        )
        await asyncio.gather(
            *(
                client_turns(ws, load, st)
                for ws, st in zip(sockets, per_sid.values(), strict=True)
                if ws is not None
            )
        )
        wall = time.monotonic() - started
    return per_sid, wall


async def run_idle_sockets(
    server: HttpServer, *, count: int, hold_s: float, tag: str, probe: Callable[[str], None]
) -> tuple[LoadStats, dict[str, Any]]:
    """Open `count` sockets (handshake + `history`, IDLE_CONNECT_CONCURRENCY at a time), hold them idle for
    `hold_s`, calling probe("open") once all are open (after 1 s) and probe("held") at the end, then close
    them. Any frame or close a socket gets while idle is an error."""
    stats = LoadStats()
    info: dict[str, Any] = {}
    gate = asyncio.Semaphore(IDLE_CONNECT_CONCURRENCY)
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def open_one(i: int):
            async with gate:
                return await client_connect(session, server, f"{tag}-{i}", stats, 30, history=True)

        started = time.monotonic()
        sockets = [ws for ws in await asyncio.gather(*(open_one(i) for i in range(count))) if ws is not None]
        info["open_s"] = time.monotonic() - started
        info["opened"] = len(sockets)
        watchers = [asyncio.ensure_future(ws.receive()) for ws in sockets]
        await asyncio.sleep(min(1.0, hold_s))
        probe("open")
        await asyncio.sleep(max(0.0, hold_s - 1.0))
        probe("held")
        for task in watchers:
            if task.done():
                exc = task.exception()
                if exc is not None:
                    stats.errors[f"idle: {type(exc).__name__}"] += 1
                else:
                    msg = task.result()
                    what = msg.type.name.lower()
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        what = f"frame {orjson.loads(msg.data).get('type')!r}"
                    stats.errors[f"idle: {what} while idle"] += 1
        closing = time.monotonic()
        await asyncio.gather(*(_close_quietly(ws) for ws in sockets))
        for task in watchers:
            if not task.done():
                task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        info["close_s"] = time.monotonic() - closing
    return stats, info


async def _close_quietly(ws) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(10):
            await ws.close()


def latency_summary(stats: LoadStats) -> dict[str, Any]:
    lat = sorted(stats.latencies_us)
    first = sorted(stats.first_token_ms)
    start = sorted(stats.start_ms)
    live = sorted(stats.live_latencies_us)
    return {
        "p50_ms": percentile(lat, 0.50) / 1000,
        "p99_ms": percentile(lat, 0.99) / 1000,
        "max_ms": (lat[-1] / 1000) if lat else float("nan"),
        "tokens": stats.tokens,
        "turns_ok": stats.turns_ok,
        "missing_tokens": stats.missing_tokens,
        "duplicate_tokens": stats.duplicate_tokens,
        "offset_breaks": stats.offset_breaks,
        "errors": stats.error_count,
        "error_kinds": dict(stats.errors),
        "error_samples": stats.samples,
        "tokens_per_chunk_frame": stats.tokens / stats.chunk_frames if stats.chunk_frames else float("nan"),
        "first_token_p50_ms": percentile(first, 0.50),
        "first_token_p99_ms": percentile(first, 0.99),
        "start_p50_ms": percentile(start, 0.50),
        "start_p99_ms": percentile(start, 0.99),
        "live_tokens": len(live),
        "live_p50_ms": percentile(live, 0.50) / 1000,
        "live_p99_ms": percentile(live, 0.99) / 1000,
        "live_max_ms": (live[-1] / 1000) if live else float("nan"),
    }


# --------------------------------------------------------------------------------------------------
# The `scale` scenario: many sockets on the chat page's path, each with a browser session


async def browser_cookies(server: HttpServer, count: int, tag: str, concurrency: int) -> list[str]:
    """`count` browser sessions: the `Cookie` header each got from its first chat page (the page's socket
    path refuses cookie-less handshakes)."""
    gate = asyncio.Semaphore(concurrency)
    conn = aiohttp.TCPConnector(limit=0)
    # No jar: each page load is a new browser, whose session cookie is read off the response.
    async with aiohttp.ClientSession(connector=conn, cookie_jar=aiohttp.DummyCookieJar()) as http:

        async def one(j: int) -> str:
            async with gate, http.get(f"{server.origin}/c/{tag}-page{j}/") as response:
                response.raise_for_status()
                cookie = response.cookies.get("sessionid")
                if cookie is None:
                    raise RuntimeError("the chat page gave no session cookie")
                return f"sessionid={cookie.value}"

        return list(await asyncio.gather(*(one(j) for j in range(count))))


@dataclasses.dataclass
class HeldSocket:
    """An open chat socket and the receive() that reads it while it idles (its pings get their pongs
    there: aiohttp answers a ping only inside receive())."""

    sid: str
    ws: aiohttp.ClientWebSocketResponse
    watcher: asyncio.Task


class SocketCrowd:
    """Many chat sockets of one server, on the chat page's path (`/ws/chat/<id>/`), `per_browser` of them
    on each browser session, each on a conversation of its own. Opened `concurrency` handshakes at a time;
    each read from the moment it is open, so any frame or close while idle is seen (an error)."""

    def __init__(self, server: HttpServer, tag: str, *, per_browser: int, concurrency: int) -> None:
        self.server, self.tag, self.per_browser, self.concurrency = server, tag, per_browser, concurrency
        self.held: list[HeldSocket] = []
        self.stats = LoadStats()  # connects and idle sockets
        self.session: aiohttp.ClientSession | None = None

    async def open(self, count: int) -> dict[str, Any]:
        """Open `count` sockets (each with its `history` frame). Return the times and what failed first."""
        info: dict[str, Any] = {}
        started = time.monotonic()
        browsers = -(-count // self.per_browser)
        cookies = await browser_cookies(self.server, browsers, self.tag, self.concurrency)
        info["browsers"] = browsers
        info["cookies_s"] = time.monotonic() - started
        gate = asyncio.Semaphore(self.concurrency)
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        url, origin = self.server.ws_url, self.server.origin
        first_error: list[str] = []

        async def open_one(i: int) -> HeldSocket | None:
            sid = f"{self.tag}-{i}"
            headers = {"Origin": origin, "Cookie": cookies[i // self.per_browser]}
            assert self.session is not None
            async with gate:
                ws = None
                try:
                    async with asyncio.timeout(30):
                        ws = await self.session.ws_connect(url(sid), headers=headers, max_msg_size=0)
                        msg = await ws.receive()
                    kind = orjson.loads(msg.data).get("type") if msg.type is aiohttp.WSMsgType.TEXT else None
                    if kind != "history":
                        raise RuntimeError(f"first frame {msg.type.name} {kind!r}, not history")
                except Exception as exc:
                    what = f"connect: {type(exc).__name__} {str(exc)[:120]}"
                    self.stats.errors[what] += 1
                    if not first_error:
                        first_error.append(f"socket {i} ({time.monotonic() - started:.1f} s in): {what}")
                    if ws is not None:
                        await _close_quietly(ws)
                    return None
            return HeldSocket(sid, ws, asyncio.ensure_future(ws.receive()))

        opening = time.monotonic()
        held = await asyncio.gather(*(open_one(i) for i in range(count)))
        self.held = [h for h in held if h is not None]
        info["open_s"] = time.monotonic() - opening
        info["opened"] = len(self.held)
        info["first_error"] = first_error[0] if first_error else None
        return info

    def idle_problems(self, held: list[HeldSocket]) -> None:
        """Count as errors the sockets of `held` that got a frame or were closed while idle."""
        for h in held:
            task = h.watcher
            if not task.done() or task.cancelled():
                continue
            exc = task.exception()
            if exc is not None:
                self.stats.errors[f"idle: {type(exc).__name__}"] += 1
                continue
            msg = task.result()
            what = msg.type.name.lower()
            if msg.type is aiohttp.WSMsgType.TEXT:
                what = f"frame {orjson.loads(msg.data).get('type')!r}"
            self.stats.errors[f"idle: {what} while idle"] += 1
            self.stats.sample(f"{h.sid}: {what} while idle")

    async def stream(self, every: int, load: Load) -> tuple[dict[str, LoadStats], list[HeldSocket], float]:
        """One socket in `every` runs `load`'s turns, all at once, while the others stay idle. Return the
        stats of each streaming socket, the sockets that stayed idle, and the wall seconds."""
        streaming = self.held[::every][: load.clients]
        chosen = {id(h) for h in streaming}
        idle = [h for h in self.held if id(h) not in chosen]
        self.idle_problems(streaming)
        ready = []
        for h in streaming:
            if not h.watcher.done():
                h.watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await h.watcher
                ready.append(h)
        per_sid = {h.sid: LoadStats() for h in ready}
        started = time.monotonic()
        await asyncio.gather(*(client_turns(h.ws, load, per_sid[h.sid]) for h in ready))
        wall = time.monotonic() - started
        self.held = idle
        return per_sid, idle, wall

    async def close(self) -> float:
        started = time.monotonic()
        await asyncio.gather(*(_close_quietly(h.ws) for h in self.held))
        for h in self.held:
            if not h.watcher.done():
                h.watcher.cancel()
        await asyncio.gather(*(h.watcher for h in self.held), return_exceptions=True)
        self.held = []
        if self.session is not None:
            await self.session.close()
            self.session = None
        return time.monotonic() - started
