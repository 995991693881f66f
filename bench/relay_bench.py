"""Relay benchmark: our server beside the seed and the bare relay, against the same local stand-in.

Not a test. For each scenario and each server, one at a time: start a fresh stand-in, start the server,
warm it up with one short reply, then drive N WebSocket clients x T turns x K stamped tokens through it
and measure the server's CPU per relayed token (from /proc, load phase only), the stand-in's CPU, and the
relay latency of every token (client receive time minus the stand-in's send stamp). See bench/README.md.

The `pair` scenario (opt-in) runs two instances of ours on the same Postgres and Redis, each conversation
with a sender socket on one and a follower socket on the other, beside one instance alone and the seed.

The `nginx` scenario (opt-in) runs a real nginx (deploy/nginx.conf) in front of two instances of ours, then
in front of one: concurrent streams (CPU per 1,000 tokens per instance, latency) and idle sockets (memory
per socket per instance).

usage: .venv/bin/python bench/relay_bench.py [--scenario burst|paced|pair|nginx|all|all-with-pair]
                                             [--servers ours,seed,bare] [--quick]
                                             [--clients N --turns T --tokens K --delay-ms D]
                                             [--idle-sockets N --idle-s S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
BASELINES = Path(
    os.environ.get("BENCH_BASELINES_DIR") or Path(__file__).resolve().parents[2] / "shared" / "baselines"
)
OUR_PYTHON = Path(sys.executable)
SEED_VENV = BENCH / ".venv-seed"
SEED_REQUIREMENTS = BENCH / "requirements-seed.txt"
HOST = "127.0.0.1"
MODEL = "openai/gpt-5.1"
ADMIN_DB_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_DB = os.environ.get("BENCH_PG_DATABASE", "chat_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_SECRET_KEY = "bench-" + secrets.token_urlsafe(32)
# channels_redis' BZPOPMIN timeout (brpop_timeout, 5 s) plus a margin: see measure_pair().
STRAY_RECEIVE_SETTLE_S = 6.0

SCENARIOS: dict[str, dict[str, float]] = {
    "burst": {"clients": 20, "turns": 3, "tokens": 500, "delay_ms": 0},
    "paced": {"clients": 100, "turns": 2, "tokens": 200, "delay_ms": 5},
    # Two instances of ours; `clients` counts conversations (a sender and a follower socket each).
    "pair": {"clients": 100, "turns": 1, "tokens": 300, "delay_ms": 5},
    # nginx in front of two instances of ours, then of one; each client on its own conversation.
    "nginx": {"clients": 200, "turns": 1, "tokens": 300, "delay_ms": 5},
}
# The `nginx` scenario's second phase: this many idle sockets (handshake + `history`), held this long.
NGINX_IDLE = {"idle_sockets": 1000, "idle_s": 10.0}
QUICK_IDLE = {"idle_sockets": 40, "idle_s": 2.0}
# Handshakes in flight at once while the idle sockets open (Daphne refuses a handshake after 5 s).
IDLE_CONNECT_CONCURRENCY = 100
NGINX = Path(os.environ.get("BENCH_NGINX", "/usr/sbin/nginx"))
DEPLOY_NGINX_CONF = REPO / "deploy" / "nginx.conf"
# scripts/serve.sh's Daphne flags (the production command), for the instances behind nginx.
SERVE_DAPHNE_FLAGS = [
    "--proxy-headers",
    "--ping-interval",
    "20",
    "--ping-timeout",
    "30",
    "--websocket_timeout",
    "86400",
    "--websocket_connect_timeout",
    "5",
    "--http-timeout",
    "60",
    "--application-close-timeout",
    "10",
    "-v",
    "1",
]
# Open files: the bench process (its client sockets), Daphne (inherits it) and nginx (worker_rlimit_nofile).
NOFILE_TARGET = 8192
NGINX_WORKER_CONNECTIONS = 4096
# `--scenario all` (and `make bench`); `pair` is opt-in: `--scenario pair` or `--scenario all-with-pair`.
DEFAULT_SCENARIOS = ("burst", "paced")
QUICK = {"clients": 4, "turns": 1, "tokens": 50}
# The design's budget for ours: CPU per token relative to the seed, per scenario; p99 at least 10x lower.
# For `pair` it applies to each instance's CPU per token it relayed (100 streams, 5 ms between tokens).
CPU_BUDGET = {"burst": 0.25, "paced": 0.5, "pair": 0.5}
P99_FACTOR = 10
ALL_SERVERS = ("ours", "seed", "bare")
# `--before DIR`: an earlier checkout of this project (a git worktree), run as server "before" beside ours
# with the same environment, so a change's cost shows as a ratio within one run.
BEFORE_DIR: Path | None = None


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Processes


class Proc:
    """A child process in its own session, logged to a file, killed (with its group) on stop()."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log_path: Path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.log_file = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if name == "standin" else self.log_file,
            stderr=self.log_file,
            start_new_session=True,
        )
        self.pid = self.popen.pid
        LIVE.add(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            self.log_file.flush()
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace: float = 8.0) -> None:
        if self not in LIVE:
            return
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        else:
            # The leader is gone; make sure nothing it started lingers in its group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self.log_file.close()
        LIVE.discard(self)


LIVE: set[Proc] = set()


def stop_all() -> None:
    for proc in list(LIVE):
        with contextlib.suppress(Exception):
            proc.stop(grace=3.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_for_port(proc: Proc, port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not accept on port {port} within {timeout:g} s:\n{proc.log_tail()}")


def start_standin(log_path: Path, tokens: int, delay_ms: float) -> tuple[Proc, str]:
    argv = [str(OUR_PYTHON), "-m", "conversations.standin", "--host", HOST, "--port", "0"]
    argv += ["--tokens", str(tokens), "--delay-ms", f"{delay_ms:g}"]
    proc = Proc("standin", argv, env=dict(os.environ), cwd=REPO, log_path=log_path)
    assert proc.popen.stdout is not None
    # The stand-in prints one line once its socket is bound; read it with a bound on the wait.
    deadline = time.monotonic() + 30
    os.set_blocking(proc.popen.stdout.fileno(), False)
    buf = b""
    while b"\n" not in buf:
        if time.monotonic() > deadline or not proc.alive():
            proc.stop()
            raise RuntimeError(f"stand-in did not start:\n{buf.decode(errors='replace')}")
        chunk = proc.popen.stdout.read()
        if chunk:
            buf += chunk
        else:
            time.sleep(0.05)
    line = buf.split(b"\n", 1)[0].decode()
    if not line.startswith("standin listening on "):
        proc.stop()
        raise RuntimeError(f"unexpected stand-in output: {line!r}")
    return proc, line.removeprefix("standin listening on ").strip()


def ensure_seed_venv() -> Path:
    """Create bench/.venv-seed from bench/requirements-seed.txt when it is missing or out of date."""
    python = SEED_VENV / "bin" / "python"
    stamp = SEED_VENV / ".installed-requirements-seed"
    digest = hashlib.sha256(SEED_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    log(f"setting up {SEED_VENV.relative_to(REPO)} from {SEED_REQUIREMENTS.relative_to(REPO)} ...")
    if not python.exists():
        subprocess.run(["python3", "-m", "venv", str(SEED_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + ["-r", str(SEED_REQUIREMENTS)],
        check=True,
    )
    stamp.write_text(digest + "\n")
    return python


# --------------------------------------------------------------------------------------------------
# CPU from /proc


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                rest = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(rest[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


@dataclasses.dataclass
class CpuSample:
    sched_ns: int  # sum over live threads of /proc/<pid>/task/<tid>/schedstat field 1
    stat_ns: int  # sum over processes of /proc/<pid>/stat utime+stime (includes exited threads)
    main_ns: int = 0  # the root process's main thread alone (the event loop, for all three servers)


def thread_ns(pid: int, tid: int) -> int:
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
            return int(f.read().split()[0])
    except (OSError, IndexError, ValueError):
        return 0


def cpu_sample(pid: int) -> CpuSample:
    sched = stat = main = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                rest = f.read().rsplit(b")", 1)[1].split()
            stat += (int(rest[11]) + int(rest[12])) * 1_000_000_000 // CLK_TCK
            for tid in os.listdir(f"/proc/{p}/task"):
                ns = thread_ns(p, int(tid))
                sched += ns
                if p == pid and int(tid) == pid:
                    main = ns
        except (OSError, IndexError, ValueError):
            continue
    return CpuSample(sched, stat, main)


def cpu_delta_ns(before: CpuSample, after: CpuSample) -> tuple[int, str]:
    """Server CPU over the load phase: per-thread schedstat (ns precise), unless threads that exited
    during the load took time with them, which only utime+stime (10 ms ticks) still counts."""
    sched = after.sched_ns - before.sched_ns
    stat = after.stat_ns - before.stat_ns
    if stat > sched * 1.05 + 30_000_000:
        return stat, "stat"
    return sched, "schedstat"


# --------------------------------------------------------------------------------------------------
# Postgres (ours only)


def pg_connect(dbname: str | None = None):
    import psycopg

    url = ADMIN_DB_URL if dbname is None else ADMIN_DB_URL.rsplit("/", 1)[0] + "/" + dbname
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def bench_db_url() -> str:
    return ADMIN_DB_URL.rsplit("/", 1)[0] + "/" + BENCH_DB


def bench_db_create() -> None:
    with pg_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def bench_db_drop() -> None:
    with contextlib.suppress(Exception), pg_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def db_counters() -> dict[str, int]:
    """Row writes on our tables, commits in the bench database, and assistant rows so far."""
    with pg_connect(BENCH_DB) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = conn.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
        ).fetchall()
        commits = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]
        replies = conn.execute(
            "SELECT count(*) FROM conversations_message WHERE role = 'assistant'"
        ).fetchone()[0]
    writes = {name: int(n) for name, n in rows}
    return {
        "message_writes": writes.get("conversations_message", 0),
        "all_writes": sum(writes.values()),
        "commits": int(commits),
        "replies": int(replies),
    }


def pg_backends() -> list[int]:
    """Pids of the Postgres backends serving the bench database (the server's connections)."""
    with pg_connect(BENCH_DB) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def pg_backends_cpu() -> dict[int, int]:
    """CPU so far of each backend of the bench database (ns, from /proc, readable for any user)."""
    return {pid: thread_ns(pid, pid) for pid in pg_backends()}


def db_counters_settled(previous: dict[str, int] | None = None, wait: float = 3.0) -> dict[str, int]:
    """Backends flush their statistics at exit; poll briefly until the numbers stop moving."""
    deadline = time.monotonic() + wait
    last = db_counters()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = db_counters()
        if now == last:
            break
        last = now
    return last


# --------------------------------------------------------------------------------------------------
# Servers


@dataclasses.dataclass
class Server:
    name: str
    proc: Proc
    port: int
    command: str

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws/"

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"


def ours_env(standin_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=bench_db_url(),
        REDIS_URL=REDIS_URL,
        DJANGO_SECRET_KEY=BENCH_SECRET_KEY,  # one per run: every instance of a pair shares it
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DEDALUS_API_KEY="bench",
        DEDALUS_BASE_URL=standin_url,
        CHAT_LOG_LEVEL="WARNING",
        # The bench's clients are all one cookie-less owner: per-owner limits would measure themselves.
        CHAT_RATE_LIMIT="",
        CHAT_ANONYMOUS_RATE_LIMIT="",
        CHAT_MAX_SOCKETS_PER_OWNER="0",
        CHAT_MAX_REPLIES_PER_OWNER="0",
        CHAT_SOCKET_FRAME_RATE="",
        CHAT_DAILY_TOKEN_QUOTA="0",
        CHAT_REQUIRE_LOGIN="0",
        PYTHONUNBUFFERED="1",
    )
    env.pop("DJANGO_DEBUG", None)
    return env


def preflight_ours() -> None:
    """Fail early, with the reason, when Postgres or Redis is not there."""
    try:
        with pg_connect():
            pass
    except Exception as exc:
        raise RuntimeError(f"Postgres at {ADMIN_DB_URL} (BENCH_PG_ADMIN_URL): {exc}") from exc
    host_port = REDIS_URL.split("://", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(64).startswith(b"+PONG"):
                raise RuntimeError("no PONG")
    except Exception as exc:
        raise RuntimeError(f"Redis at {REDIS_URL} (BENCH_REDIS_URL): {exc}") from exc


def migrate_bench_db() -> None:
    env = ours_env("http://127.0.0.1:9")
    cmd = [str(OUR_PYTHON), "manage.py", "migrate", "--no-input", "-v0"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{done.stdout}\n{done.stderr}")


def start_server(
    name: str, standin_url: str, log_path: Path, daphne_flags: list[str] | tuple[str, ...] = ()
) -> Server:
    port = free_port()
    if name in ("ours", "before"):
        daphne = OUR_PYTHON.parent / "daphne"
        argv = [str(daphne), "-b", HOST, "-p", str(port), *daphne_flags, "chatproject.asgi:application"]
        env, cwd = ours_env(standin_url), (REPO if name == "ours" else BEFORE_DIR)
        shown = (
            "DATABASE_URL={DATABASE_URL} REDIS_URL={REDIS_URL} DEDALUS_BASE_URL={DEDALUS_BASE_URL} ".format(
                **env
            )
        )
    elif name == "seed":
        argv = [str(ensure_seed_venv()), str(BASELINES / "seed_server.py"), str(port)]
        env = dict(os.environ, DEDALUS_API_KEY="bench", DEDALUS_BASE_URL=standin_url, PYTHONUNBUFFERED="1")
        cwd = BASELINES
        shown = f"DEDALUS_API_KEY=bench DEDALUS_BASE_URL={standin_url} "
    elif name == "bare":
        # The bare relay sends no Authorization header and the stand-in refuses requests without one;
        # credentials in the URL make aiohttp send one (Basic), with no change to either program.
        upstream = standin_url.replace("http://", "http://bench:bench@", 1)
        argv = [str(OUR_PYTHON), str(BASELINES / "bare_relay.py"), str(port), upstream]
        env, cwd, shown = dict(os.environ, PYTHONUNBUFFERED="1"), BASELINES, ""
    else:
        raise ValueError(name)
    proc = Proc(name, argv, env=env, cwd=cwd, log_path=log_path)
    server = Server(name, proc, port, shown + shlex.join(argv))
    try:
        wait_for_port(proc, port)
    except BaseException:
        proc.stop()
        raise
    return server


# --------------------------------------------------------------------------------------------------
# Load generator


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
    server: Server,
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
                server.url + sid, headers={"Origin": server.origin}, max_msg_size=0, autoping=True
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


async def client_turns(
    ws,
    turns: int,
    tokens: int,
    delay_ms: float,
    stats: LoadStats,
    turn_timeout: float,
    conv: PairConversation | None = None,
):
    message = orjson.dumps(
        {"message": f"bench [[standin stamp=1 tokens={tokens} delay_ms={delay_ms:g}]]", "model": MODEL}
    ).decode()
    text_type = aiohttp.WSMsgType.TEXT
    try:
        for _ in range(turns):
            track = ReplyTrack.new(tokens)
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
            if track.first_chunk_us:
                stats.first_token_ms.append((track.first_chunk_us * 1000 - sent_ns) / 1e6)
            clean = track.settle(stats, failed=failed is not None)
            if failed:
                stats.errors[failed] += 1
                return  # the socket is in an unknown state: this client stops here
            if clean:
                stats.turns_ok += 1
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
    sender,
    follower,
    *,
    turns: int,
    tokens: int,
    delay_ms: float,
    sender_stats: LoadStats,
    follower_stats: LoadStats,
    turn_timeout: float,
    sid: str = "",
) -> None:
    """Drive one conversation through its sender; read its follower until it saw every reply end."""
    conv = PairConversation(turns)
    reading = asyncio.create_task(follower_read(follower, conv, tokens, follower_stats))
    try:
        await client_turns(sender, turns, tokens, delay_ms, sender_stats, turn_timeout, conv)
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


async def run_load(
    server: Server, *, clients: int, turns: int, tokens: int, delay_ms: float, tag: str, turn_timeout: float
) -> tuple[LoadStats, float]:
    """Connect every client, then run every client's turns at once. Return the stats and wall seconds.

    Works for every server (the seed and the bare relay send no `history` frame)."""
    per_sid, wall = await run_stream_clients(
        server,
        clients=clients,
        turns=turns,
        tokens=tokens,
        delay_ms=delay_ms,
        tag=tag,
        turn_timeout=turn_timeout,
        history=False,
    )
    return LoadStats.merged(list(per_sid.values())), wall


async def run_pair_load(
    servers: tuple[Server, Server],
    *,
    clients: int,
    turns: int,
    tokens: int,
    delay_ms: float,
    tag: str,
    turn_timeout: float,
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
                sender,
                follower,
                turns=turns,
                tokens=tokens,
                delay_ms=delay_ms,
                sender_stats=stats["local", s],
                follower_stats=stats["cross", f],
                turn_timeout=turn_timeout,
                sid=f"{tag}-{i}",
            )

        pairs = await asyncio.gather(*(open_pair(i) for i in range(clients)))
        await asyncio.gather(*(converse(i, sender, follower) for i, (sender, follower) in enumerate(pairs)))
        wall = time.monotonic() - started
    return stats, wall


def percentile(sorted_values: list[int] | list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * (len(sorted_values) - 1) + 0.5))]


# --------------------------------------------------------------------------------------------------
# One server in one scenario


def warm_up(server: Server, label: str, tag: str) -> None:
    """One client, one 20-token reply (imports, pools, the upstream client); not measured."""
    for attempt in range(3):
        warm, _ = asyncio.run(
            run_load(
                server, clients=1, turns=1, tokens=20, delay_ms=0, tag=f"{tag}-w{attempt}", turn_timeout=30
            )
        )
        if not warm.error_count and warm.tokens == 20:
            return
        log(f"[{label}] warm-up failed: {dict(warm.errors)}")
    raise RuntimeError(f"warm-up failed 3 times: {dict(warm.errors)}\n{server.proc.log_tail()}")


def profiler_start(args: argparse.Namespace, pid: int, out: Path, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [args.py_spy, "record", "--pid", str(pid), "-o", str(out), "-f", "raw"]
        + ["-r", "200", "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "wb"),  # noqa: SIM115
        start_new_session=True,
    )


def profiler_stop(profiler: subprocess.Popen) -> None:
    profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(30)
    except subprocess.TimeoutExpired:
        profiler.kill()


def log_problems(path: Path) -> dict[str, int]:
    """WARNING/ERROR/CRITICAL lines and tracebacks in a server's log, counted by level, logger and message."""
    found: Counter = Counter()
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("Traceback"):
                found["Traceback"] += 1
                continue
            # "2026-11-26 06:05:35,123 WARNING conversations.relay group send failed"
            words = line.split(" ", 4)
            if len(words) == 5 and words[2] in ("WARNING", "ERROR", "CRITICAL"):
                found[" ".join(words[2:])[:160]] += 1
    return dict(found.most_common(20))


def redis_flush() -> None:
    """Empty the bench's Redis database (channel layer and reply logs) before a run of ours."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
    try:
        client.flushdb()
    finally:
        client.close()


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


def db_per_reply(before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    replies = after["replies"] - before["replies"]
    return {
        "replies": replies,
        "message_writes_per_reply": (after["message_writes"] - before["message_writes"]) / max(replies, 1),
        "all_writes_per_reply": (after["all_writes"] - before["all_writes"]) / max(replies, 1),
        "commits_per_reply": (after["commits"] - before["commits"]) / max(replies, 1),
    }


def measure(
    name: str, scenario: str, params: dict[str, Any], args: argparse.Namespace, run_dir: Path, run_id: str
) -> dict[str, Any]:
    clients, turns, tokens, delay_ms = (
        params["clients"],
        params["turns"],
        params["tokens"],
        params["delay_ms"],
    )
    result: dict[str, Any] = {"server": name, "loadavg_before": os.getloadavg()}
    if name == "ours" and scenario == "pair":
        redis_flush()
    standin, standin_url = start_standin(run_dir / f"{scenario}-{name}-standin.log", tokens, delay_ms)
    server = None
    profiler = None
    try:
        db_before = db_counters_settled() if name in ("ours", "before") else None
        server = start_server(name, standin_url, run_dir / f"{scenario}-{name}.log")
        result["command"] = server.command
        result["standin_url"] = standin_url
        log(f"[{scenario}] {name}: pid {server.proc.pid} on port {server.port}; warming up")
        tag = f"b{run_id}-{scenario}-{name}"
        warm_up(server, f"{scenario}] [{name}", tag)
        if args.py_spy and name in args.py_spy_servers:
            out = run_dir / f"{scenario}-{name}-profile.txt"
            profiler = profiler_start(args, server.proc.pid, out, run_dir / f"{scenario}-{name}-py-spy.log")
            result["profile"] = str(out)
            time.sleep(1.0)
        log(
            f"[{scenario}] {name}: {clients} clients x {turns} turns x {tokens} tokens, delay {delay_ms:g} ms"
        )
        pg0 = pg_backends_cpu() if name in ("ours", "before") else None
        cpu0, standin0 = cpu_sample(server.proc.pid), cpu_sample(standin.pid)
        stats, wall = asyncio.run(
            run_load(
                server,
                clients=clients,
                turns=turns,
                tokens=tokens,
                delay_ms=delay_ms,
                tag=tag,
                turn_timeout=args.turn_timeout,
            )
        )
        cpu1, standin1 = cpu_sample(server.proc.pid), cpu_sample(standin.pid)
        pg1 = pg_backends_cpu() if name in ("ours", "before") else None
        if profiler is not None:
            profiler_stop(profiler)
            profiler = None
        server_ns, source = cpu_delta_ns(cpu0, cpu1)
        standin_ns, _ = cpu_delta_ns(standin0, standin1)

        def per_token(ns: int) -> float:
            return ns / 1000 / stats.tokens if stats.tokens else float("nan")

        summary = latency_summary(stats)
        result.update(
            cpu_us_per_token=per_token(server_ns),
            cpu_source=source,
            server_cpu_s=server_ns / 1e9,
            main_thread_cpu_us_per_token=per_token(cpu1.main_ns - cpu0.main_ns),
            other_threads_cpu_us_per_token=per_token(
                (cpu1.sched_ns - cpu0.sched_ns) - (cpu1.main_ns - cpu0.main_ns)
            ),
            standin_cpu_s=standin_ns / 1e9,
            standin_cpu_us_per_token=per_token(standin_ns),
            p50_ms=summary["p50_ms"],
            p99_ms=summary["p99_ms"],
            max_ms=summary["max_ms"],
            tokens=stats.tokens,
            expected_tokens=clients * turns * tokens,
            turns_ok=stats.turns_ok,
            missing_tokens=stats.missing_tokens,
            duplicate_tokens=stats.duplicate_tokens,
            offset_breaks=stats.offset_breaks,
            errors=stats.error_count,
            error_kinds=dict(stats.errors),
            error_samples=stats.samples,
            wall_s=wall,
            tokens_per_chunk_frame=summary["tokens_per_chunk_frame"],
            first_token_p50_ms=summary["first_token_p50_ms"],
            first_token_p99_ms=summary["first_token_p99_ms"],
        )
        if pg0 is not None and pg1 is not None:
            # Backends that ended during the load are missed; daphne keeps its pooled connections open.
            pg_ns = sum(ns - pg0.get(pid, 0) for pid, ns in pg1.items())
            result["postgres_cpu_us_per_token"] = per_token(pg_ns)
            result["postgres_backends"] = len(pg1)
        if server.proc.alive():
            server.proc.stop()
        else:
            result["server_exit"] = server.proc.popen.returncode
            result["server_log_tail"] = server.proc.log_tail()
        result["log_problems"] = log_problems(server.proc.log_path)
        if db_before is not None:
            result["db"] = db_per_reply(db_before, db_counters_settled())
    finally:
        if profiler is not None:
            with contextlib.suppress(Exception):
                profiler.kill()
        if server is not None:
            server.proc.stop()
        standin.stop()
    return result


PAIR_NAMES = ("A", "B")


def measure_pair(
    scenario: str, params: dict[str, Any], args: argparse.Namespace, run_dir: Path, run_id: str
) -> dict[str, Any]:
    """Two instances of ours (A, B) on one stand-in, one database, one Redis; each conversation has its
    sender on one instance and its follower on the other. CPU per instance, latency per socket role."""
    clients, turns, tokens, delay_ms = (
        params["clients"],
        params["turns"],
        params["tokens"],
        params["delay_ms"],
    )
    result: dict[str, Any] = {"server": "pair", "loadavg_before": os.getloadavg()}
    redis_flush()
    standin, standin_url = start_standin(run_dir / f"{scenario}-pair-standin.log", tokens, delay_ms)
    servers: list[Server] = []
    profilers: list[subprocess.Popen] = []
    try:
        db_before = db_counters_settled()
        for label in PAIR_NAMES:
            servers.append(start_server("ours", standin_url, run_dir / f"{scenario}-pair-{label}.log"))
        a, b = servers
        result["command"] = [server.command for server in servers]
        result["standin_url"] = standin_url
        log(
            f"[{scenario}] pair: A pid {a.proc.pid} on port {a.port}, B pid {b.proc.pid} on port {b.port};"
            " warming up"
        )
        tag = f"b{run_id}-{scenario}-pair"
        for label, server in zip(PAIR_NAMES, servers, strict=True):
            warm_up(server, f"{scenario}] [pair {label}", f"{tag}{label}")
        # Both directions of the cross-instance path once (group events, reply-log reads), not measured.
        # A failure here is a finding, not a reason to stop: it is recorded and the load runs anyway.
        warm_errors: Counter = Counter()
        for attempt in range(2):
            warm, _ = asyncio.run(
                run_pair_load(
                    (a, b),
                    clients=2,
                    turns=1,
                    tokens=20,
                    delay_ms=0,
                    tag=f"{tag}-w{attempt}",
                    turn_timeout=10,
                )
            )
            merged = LoadStats.merged(list(warm.values()))
            if not merged.error_count and merged.tokens == 80:
                break
            warm_errors += merged.errors
            log(f"[{scenario}] pair: cross-instance warm-up failed: {dict(merged.errors)}")
        result["warmup_errors"] = dict(warm_errors)
        # channels_redis: a receive() cancelled inside BZPOPMIN (the warm-up's sockets just closed) can
        # leave that BZPOPMIN pending on the Redis server for up to its 5 s timeout, and whatever it pops
        # then is lost (django/channels_redis#366). Let those expire so the load does not start on them.
        time.sleep(STRAY_RECEIVE_SETTLE_S)
        if args.py_spy and "ours" in args.py_spy_servers:
            result["profile"] = []
            for label, server in zip(PAIR_NAMES, servers, strict=True):
                out = run_dir / f"{scenario}-pair-{label}-profile.txt"
                log_path = run_dir / f"{scenario}-pair-{label}-py-spy.log"
                profilers.append(profiler_start(args, server.proc.pid, out, log_path))
                result["profile"].append(str(out))
            time.sleep(1.0)
        log(
            f"[{scenario}] pair: {clients} conversations (sender + follower) x {turns} turns"
            f" x {tokens} tokens, delay {delay_ms:g} ms"
        )
        pg0 = pg_backends_cpu()
        cpu0 = [cpu_sample(server.proc.pid) for server in servers]
        standin0 = cpu_sample(standin.pid)
        stats, wall = asyncio.run(
            run_pair_load(
                (a, b),
                clients=clients,
                turns=turns,
                tokens=tokens,
                delay_ms=delay_ms,
                tag=tag,
                turn_timeout=args.turn_timeout,
            )
        )
        cpu1 = [cpu_sample(server.proc.pid) for server in servers]
        standin1 = cpu_sample(standin.pid)
        pg1 = pg_backends_cpu()
        for profiler in profilers:
            profiler_stop(profiler)
        profilers = []

        def per(ns: int, count: int) -> float:
            return ns / 1000 / count if count else float("nan")

        instances: dict[str, Any] = {}
        total_ns = 0
        for i, (label, server) in enumerate(zip(PAIR_NAMES, servers, strict=True)):
            ns, source = cpu_delta_ns(cpu0[i], cpu1[i])
            main_ns = cpu1[i].main_ns - cpu0[i].main_ns
            relayed = stats["local", i].tokens + stats["cross", i].tokens
            total_ns += ns
            instances[label] = {
                "pid": server.proc.pid,
                "port": server.port,
                "server_cpu_s": ns / 1e9,
                "cpu_source": source,
                "cpu_us_per_token": per(ns, relayed),
                "main_thread_cpu_us_per_token": per(main_ns, relayed),
                "other_threads_cpu_us_per_token": per(
                    (cpu1[i].sched_ns - cpu0[i].sched_ns) - main_ns, relayed
                ),
                "tokens": relayed,
                "local": latency_summary(stats["local", i]),
                "cross": latency_summary(stats["cross", i]),
                "errors": stats["local", i].error_count + stats["cross", i].error_count,
            }
        local = LoadStats.merged([stats["local", 0], stats["local", 1]])
        cross = LoadStats.merged([stats["cross", 0], stats["cross", 1]])
        every = LoadStats.merged([local, cross])
        standin_ns, _ = cpu_delta_ns(standin0, standin1)
        result.update(
            instances=instances,
            cpu_us_per_token=per(total_ns, every.tokens),
            cpu_us_per_upstream_token=per(total_ns, local.tokens),
            server_cpu_s=total_ns / 1e9,
            standin_cpu_s=standin_ns / 1e9,
            standin_cpu_us_per_token=per(standin_ns, every.tokens),
            local=latency_summary(local),
            cross=latency_summary(cross),
            p50_ms=latency_summary(every)["p50_ms"],
            p99_ms=latency_summary(every)["p99_ms"],
            max_ms=latency_summary(every)["max_ms"],
            tokens=every.tokens,
            expected_tokens=2 * clients * turns * tokens,
            turns_ok=every.turns_ok,
            errors=every.error_count,
            error_kinds=dict(every.errors),
            wall_s=wall,
        )
        pg_ns = sum(ns - pg0.get(pid, 0) for pid, ns in pg1.items())
        result["postgres_cpu_us_per_token"] = per(pg_ns, every.tokens)
        result["postgres_backends"] = len(pg1)
        for label, server in zip(PAIR_NAMES, servers, strict=True):
            if server.proc.alive():
                server.proc.stop()
            else:
                instances[label]["server_exit"] = server.proc.popen.returncode
                instances[label]["server_log_tail"] = server.proc.log_tail()
            instances[label]["log_problems"] = log_problems(server.proc.log_path)
        result["db"] = db_per_reply(db_before, db_counters_settled())
    finally:
        for profiler in profilers:
            with contextlib.suppress(Exception):
                profiler.kill()
        for server in servers:
            server.proc.stop()
        standin.stop()
    return result


# --------------------------------------------------------------------------------------------------
# The `nginx` scenario: deploy/nginx.conf in front of two instances of ours, then one


def raise_nofile(target: int = NOFILE_TARGET) -> tuple[int, int]:
    """Raise this process's open-files limit (Daphne, started after, inherits it). Return (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def nginx_configure(prefix: Path, port: int, upstream_ports: list[int]) -> Path:
    """deploy/nginx.conf with its upstream servers, listen address and access log swapped for ours (as
    tests/test_nginx.py does), inside a main config with enough worker connections and open files."""
    site = DEPLOY_NGINX_CONF.read_text()
    servers = re.findall(r"^([ \t]*)server 127\.0\.0\.1:(800[12])( [^;\n]*)?;[ \t]*\n", site, re.MULTILINE)
    if [s[1] for s in servers] != ["8001", "8002"]:
        raise RuntimeError(f"{DEPLOY_NGINX_CONF}: expected the upstream lines for ports 8001 and 8002")
    indent, _, options = servers[0]
    lines = "".join(f"{indent}server 127.0.0.1:{p}{options};\n" for p in upstream_ports)
    first = re.compile(r"^[ \t]*server 127\.0\.0\.1:8001[^;\n]*;[ \t]*\n", re.MULTILINE)
    second = re.compile(r"^[ \t]*server 127\.0\.0\.1:8002[^;\n]*;[ \t]*\n", re.MULTILINE)
    site = second.sub("", first.sub(lambda _: lines, site, count=1), count=1)
    for old, new in (
        ("    listen 80;", f"    listen {HOST}:{port};"),
        ("access_log /var/log/nginx/chat.access.log chat;", f"access_log {prefix / 'access.log'} chat;"),
    ):
        if site.count(old) != 1:
            raise RuntimeError(f"{DEPLOY_NGINX_CONF} should contain {old!r} exactly once")
        site = site.replace(old, new)
    (prefix / "chat.conf").write_text(site)
    temp = prefix / "temp"
    temp.mkdir(exist_ok=True)
    main = "\n".join(
        [
            "user root;" if os.geteuid() == 0 else "",  # root's workers would be `nobody`
            "worker_processes 1;",
            f"worker_rlimit_nofile {NOFILE_TARGET};",
            f"pid {prefix / 'nginx.pid'};",
            f"error_log {prefix / 'error.log'} info;",
            f"events {{ worker_connections {NGINX_WORKER_CONNECTIONS}; }}",
            "http {",
            *(
                f"    {kind}_temp_path {temp / kind};"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            ),
            f"    access_log {prefix / 'access.log'};",
            f"    include {prefix / 'chat.conf'};",
            "}",
            "",
        ]
    )
    conf = prefix / "nginx.conf"
    conf.write_text(main)
    return conf


def start_nginx(prefix: Path, upstream_ports: list[int]) -> Server:
    if not NGINX.exists():
        raise RuntimeError(f"nginx not found at {NGINX} (apt-get install nginx, or set BENCH_NGINX)")
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = nginx_configure(prefix, port, upstream_ports)
    argv = [str(NGINX), "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    argv += ["-g", "daemon off;"]
    proc = Proc("nginx", argv, env=dict(os.environ), cwd=prefix, log_path=prefix / "nginx.log")
    server = Server("nginx", proc, port, shlex.join(argv))
    try:
        wait_for_port(proc, port, timeout=10)
    except BaseException:
        proc.stop()
        raise
    return server


def rss_kib(pid: int) -> int:
    """VmRSS of a process and its descendants (nginx: master + workers), in KiB."""
    total = 0
    for p in _descendants(pid):
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


WS_ACCESS = re.compile(r'"(WSCONNECTING|WSCONNECT|WSREJECT|WSDISCONNECT) /ws/([^"]+)"')


def daphne_ws_events(path: Path, prefix: str) -> dict[str, Counter]:
    """From a Daphne access log: for each event kind, how many sockets whose session id starts with
    `prefix` had it (WSCONNECT = the handshake was accepted by this instance)."""
    out: dict[str, Counter] = {}
    with contextlib.suppress(OSError):
        for kind, sid in WS_ACCESS.findall(path.read_text(errors="replace")):
            if sid.startswith(prefix):
                out.setdefault(kind, Counter())[sid] += 1
    return out


def nginx_error_summary(path: Path) -> dict[str, int]:
    """nginx's error log, counted by level and message (connection numbers, addresses and requests cut);
    `notice` lines (start, stop, signals) are left out."""
    found: Counter = Counter()
    pattern = re.compile(r"^\S+ \S+ \[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*?)(?:, client: .*)?$")
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            m = pattern.match(line)
            if not m:
                continue
            level, message = m.groups()
            if level == "notice":
                continue
            message = re.sub(r"\d+", "N", message)
            found[f"[{level}] {message}"[:160]] += 1
    return dict(found.most_common(15))


def nginx_access_summary(path: Path, prefix: str) -> dict[str, Any]:
    """nginx's access log lines of the sockets whose session id starts with `prefix`: statuses and the
    upstream each went to (a socket is logged when it closes)."""
    statuses: Counter = Counter()
    upstreams: Counter = Counter()
    needle = f"GET /ws/{prefix}"
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if needle not in line:
                continue
            m = re.search(r'" (\d{3}) ', line)
            statuses[m.group(1) if m else "?"] += 1
            u = re.search(r" upstream=(\S+) ", line)
            upstreams[u.group(1) if u else "?"] += 1
    return {"statuses": dict(statuses), "upstreams": dict(upstreams)}


async def run_stream_clients(
    server: Server,
    *,
    clients: int,
    turns: int,
    tokens: int,
    delay_ms: float,
    tag: str,
    turn_timeout: float,
    history: bool = True,
) -> tuple[dict[str, LoadStats], float]:
    """Connect every client, then run every client's turns at once, with one LoadStats per socket (keyed by
    its session id), so that each socket's tokens can be charged to the instance that accepted it. With
    `history` (ours), every socket has its `history` frame before its turns."""
    per_sid = {f"{tag}-{i}": LoadStats() for i in range(clients)}
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        started = time.monotonic()
        sockets = await asyncio.gather(
            *(client_connect(session, server, sid, st, 30, history=history) for sid, st in per_sid.items())
        )
        await asyncio.gather(
            *(
                client_turns(ws, turns, tokens, delay_ms, st, turn_timeout)
                for ws, st in zip(sockets, per_sid.values(), strict=True)
                if ws is not None
            )
        )
        wall = time.monotonic() - started
    return per_sid, wall


async def run_idle_sockets(
    server: Server, *, count: int, hold_s: float, tag: str, probe
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


def wait_for_disconnects(logs: list[Path], prefix: str, timeout: float = 20.0) -> bool:
    """Until every socket of `prefix` that an instance accepted has its WSDISCONNECT in that log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = 0
        for path in logs:
            ev = daphne_ws_events(path, prefix)
            pending += len(ev.get("WSCONNECT", Counter())) - len(ev.get("WSDISCONNECT", Counter()))
        if pending <= 0:
            return True
        time.sleep(0.5)
    return False


def measure_nginx(
    config: str, scenario: str, params: dict[str, Any], args: argparse.Namespace, run_dir: Path, run_id: str
) -> dict[str, Any]:
    """nginx (deploy/nginx.conf) in front of two instances of ours (`two`) or one (`one`), all on one
    stand-in, the chat_bench database and the bench's Redis. Phase 1, idle: open the idle sockets, hold
    them, RSS per instance before/after. Phase 2, streams: N clients x T turns x K stamped tokens, each on
    its own conversation; CPU per instance per token it relayed, nginx CPU apart."""
    clients, turns, tokens, delay_ms = (
        params["clients"],
        params["turns"],
        params["tokens"],
        params["delay_ms"],
    )
    labels = PAIR_NAMES[: 2 if config == "two" else 1]
    result: dict[str, Any] = {
        "server": config,
        "instances_count": len(labels),
        "loadavg_before": os.getloadavg(),
        "nofile": raise_nofile(),
    }
    redis_flush()
    standin, standin_url = start_standin(run_dir / f"{scenario}-{config}-standin.log", tokens, delay_ms)
    servers: list[Server] = []
    nginx: Server | None = None
    try:
        db_before = db_counters_settled()
        for label in labels:
            log_path = run_dir / f"{scenario}-{config}-{label}.log"
            servers.append(start_server("ours", standin_url, log_path, SERVE_DAPHNE_FLAGS))
        nginx = start_nginx(run_dir / f"{scenario}-{config}-nginx", [s.port for s in servers])
        result["command"] = [s.command for s in servers] + [nginx.command]
        result["nginx_conf"] = str((run_dir / f"{scenario}-{config}-nginx" / "chat.conf").relative_to(REPO))
        log(
            f"[{scenario}] {config}: nginx pid {nginx.proc.pid} on port {nginx.port} in front of "
            + ", ".join(
                f"{lab} pid {s.proc.pid} port {s.port}" for lab, s in zip(labels, servers, strict=True)
            )
            + "; warming up"
        )
        tag = f"b{run_id}-{scenario}-{config}"
        for label, server in zip(labels, servers, strict=True):
            warm_up(server, f"{scenario}] [{config} {label}", f"{tag}{label}")
        warm, _ = asyncio.run(
            run_load(nginx, clients=4, turns=1, tokens=20, delay_ms=0, tag=f"{tag}-wn", turn_timeout=30)
        )
        if warm.error_count or warm.tokens != 80:
            raise RuntimeError(f"warm-up through nginx failed: {dict(warm.errors)}")
        logs = [s.proc.log_path for s in servers]
        nginx_log = nginx.proc.log_path.parent / "access.log"
        nginx_err = nginx.proc.log_path.parent / "error.log"

        # Phase 1: idle sockets, on a process that has only been warmed up (fresh memory, see README).
        idle_count, hold_s = params["idle_sockets"], params["idle_s"]
        idle_tag = f"{tag}-idle"
        time.sleep(1.0)
        rss: dict[str, list[int]] = {"before": [rss_kib(s.proc.pid) for s in servers]}
        nginx_rss = {"before": rss_kib(nginx.proc.pid)}

        def probe(point: str) -> None:
            rss[point] = [rss_kib(s.proc.pid) for s in servers]
            nginx_rss[point] = rss_kib(nginx.proc.pid)

        log(f"[{scenario}] {config}: {idle_count} idle sockets through nginx, held {hold_s:g} s")
        idle_stats, idle_info = asyncio.run(
            run_idle_sockets(nginx, count=idle_count, hold_s=hold_s, tag=idle_tag, probe=probe)
        )
        idle_info["all_disconnected"] = wait_for_disconnects(logs, idle_tag + "-")
        time.sleep(1.0)
        probe("after_close")
        idle_instances = {}
        for i, label in enumerate(labels):
            ev = daphne_ws_events(logs[i], idle_tag + "-")
            held = len(ev.get("WSCONNECT", Counter()))
            grown = rss["held"][i] - rss["before"][i]
            idle_instances[label] = {
                "sockets": held,
                "rejected": len(ev.get("WSREJECT", Counter())),
                "rss_before_kib": rss["before"][i],
                "rss_open_kib": rss["open"][i],
                "rss_held_kib": rss["held"][i],
                "rss_after_close_kib": rss["after_close"][i],
                "kib_per_socket": grown / held if held else float("nan"),
                "kib_per_socket_at_open": (rss["open"][i] - rss["before"][i]) / held
                if held
                else float("nan"),
            }
        opened = idle_info["opened"]
        result["idle"] = {
            "sockets": idle_count,
            "hold_s": hold_s,
            **idle_info,
            "errors": idle_stats.error_count,
            "error_kinds": dict(idle_stats.errors),
            "instances": idle_instances,
            "nginx_rss_kib": nginx_rss,
            "nginx_kib_per_socket": (nginx_rss["held"] - nginx_rss["before"]) / opened if opened else None,
            "nginx_access": nginx_access_summary(nginx_log, idle_tag + "-"),
        }
        time.sleep(1.0)

        # Phase 2: concurrent streams.
        log(
            f"[{scenario}] {config}: {clients} clients x {turns} turns x {tokens} tokens,"
            f" delay {delay_ms:g} ms, through nginx"
        )
        pg0 = pg_backends_cpu()
        cpu0 = [cpu_sample(s.proc.pid) for s in servers]
        nginx0, standin0 = cpu_sample(nginx.proc.pid), cpu_sample(standin.pid)
        stream_tag = f"{tag}-s"
        per_sid, wall = asyncio.run(
            run_stream_clients(
                nginx,
                clients=clients,
                turns=turns,
                tokens=tokens,
                delay_ms=delay_ms,
                tag=stream_tag,
                turn_timeout=args.turn_timeout,
            )
        )
        cpu1 = [cpu_sample(s.proc.pid) for s in servers]
        nginx1, standin1 = cpu_sample(nginx.proc.pid), cpu_sample(standin.pid)
        pg1 = pg_backends_cpu()
        wait_for_disconnects(logs, stream_tag + "-", timeout=10)

        # Which instance accepted each socket: its WSCONNECT line in that instance's access log.
        where: dict[str, str] = {}
        doubly: list[str] = []
        for label, path in zip(labels, logs, strict=True):
            for sid in daphne_ws_events(path, stream_tag + "-").get("WSCONNECT", Counter()):
                if sid in per_sid:
                    if sid in where:
                        doubly.append(sid)
                    where[sid] = label
        groups: dict[str, list[LoadStats]] = {label: [] for label in labels}
        unattributed: list[LoadStats] = []
        for sid, st in per_sid.items():
            (groups[where[sid]] if sid in where else unattributed).append(st)

        def per_k(ns: int, count: int) -> float:
            """ms CPU per 1,000 tokens (numerically the same as µs per token)."""
            return ns / 1e6 / count * 1000 if count else float("nan")

        instances: dict[str, Any] = {}
        total_ns = 0
        for i, label in enumerate(labels):
            ns, source = cpu_delta_ns(cpu0[i], cpu1[i])
            main_ns = cpu1[i].main_ns - cpu0[i].main_ns
            merged = LoadStats.merged(groups[label])
            total_ns += ns
            instances[label] = {
                "pid": servers[i].proc.pid,
                "port": servers[i].port,
                "sockets": len(groups[label]),
                "server_cpu_s": ns / 1e9,
                "cpu_source": source,
                "cpu_ms_per_1k_tokens": per_k(ns, merged.tokens),
                "main_thread_ms_per_1k_tokens": per_k(main_ns, merged.tokens),
                "other_threads_ms_per_1k_tokens": per_k(
                    (cpu1[i].sched_ns - cpu0[i].sched_ns) - main_ns, merged.tokens
                ),
                **latency_summary(merged),
            }
        every = LoadStats.merged(list(per_sid.values()))
        nginx_ns, _ = cpu_delta_ns(nginx0, nginx1)
        standin_ns, _ = cpu_delta_ns(standin0, standin1)
        pg_ns = sum(ns - pg0.get(pid, 0) for pid, ns in pg1.items())
        summary = latency_summary(every)
        result["streams"] = {
            "instances": instances,
            "cpu_ms_per_1k_tokens": per_k(total_ns, every.tokens),
            "server_cpu_s": total_ns / 1e9,
            "nginx_cpu_s": nginx_ns / 1e9,
            "nginx_cpu_ms_per_1k_tokens": per_k(nginx_ns, every.tokens),
            "standin_cpu_s": standin_ns / 1e9,
            "standin_cpu_ms_per_1k_tokens": per_k(standin_ns, every.tokens),
            "postgres_cpu_ms_per_1k_tokens": per_k(pg_ns, every.tokens),
            "postgres_backends": len(pg1),
            **summary,
            "expected_tokens": clients * turns * tokens,
            "unattributed_sockets": len(unattributed),
            "unattributed_tokens": LoadStats.merged(unattributed).tokens,
            "sockets_in_two_logs": doubly[:10],
            "wall_s": wall,
            "nginx_access": nginx_access_summary(nginx_log, stream_tag + "-"),
        }
        result["errors"] = every.error_count + idle_stats.error_count
        for label, server in zip(labels, servers, strict=True):
            if server.proc.alive():
                server.proc.stop()
            else:
                instances[label]["server_exit"] = server.proc.popen.returncode
                instances[label]["server_log_tail"] = server.proc.log_tail()
            instances[label]["log_problems"] = log_problems(server.proc.log_path)
        nginx.proc.stop()
        result["nginx_errors"] = nginx_error_summary(nginx_err)
        result["db"] = db_per_reply(db_before, db_counters_settled())
    finally:
        if nginx is not None:
            nginx.proc.stop()
        for server in servers:
            server.proc.stop()
        standin.stop()
    return result


# --------------------------------------------------------------------------------------------------
# Report


def fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return format(value, spec)


def table(scenario: str, params: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    seed = next((r for r in rows if r["server"] == "seed" and "cpu_us_per_token" in r), None)
    ours = next((r for r in rows if r["server"] == "ours"), None)
    head = (
        f"== {scenario}: {params['clients']} clients x {params['turns']} turns x {params['tokens']} tokens,"
        f" delay {params['delay_ms']:g} ms =="
    )
    cols = ("server", "µs CPU/token", "× seed", "p50 ms", "p99 ms", "max ms", "tokens", "errors", "wall s")
    widths = (6, 12, 7, 9, 9, 9, 8, 6, 7)
    lines = [
        head,
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cols, widths, strict=True))),
    ]
    notes = []
    for r in rows:
        if "cpu_us_per_token" not in r:
            lines.append(f"{r['server']:<6}  FAILED: {r.get('failure', '?')}")
            continue
        ratio = r["cpu_us_per_token"] / seed["cpu_us_per_token"] if seed else None
        r["ratio_to_seed"] = ratio
        cells = (
            r["server"].ljust(6),
            fmt(r["cpu_us_per_token"], ".1f").rjust(12),
            fmt(ratio, ".3f").rjust(7),
            fmt(r["p50_ms"], ".1f").rjust(9),
            fmt(r["p99_ms"], ".1f").rjust(9),
            fmt(r["max_ms"], ".1f").rjust(9),
            f"{r['tokens']}".rjust(8),
            f"{r['errors']}".rjust(6),
            fmt(r["wall_s"], ".1f").rjust(7),
        )
        lines.append("  ".join(cells))
        notes.append(
            f"  {r['server']}: stand-in CPU {r['standin_cpu_s']:.2f} s"
            f" ({r['standin_cpu_us_per_token']:.1f} µs/token, not charged to the server);"
            f" server CPU {r['server_cpu_s']:.2f} s via {r['cpu_source']}:"
            f" main thread {r['main_thread_cpu_us_per_token']:.1f} µs/token,"
            f" other threads {r['other_threads_cpu_us_per_token']:.1f} µs/token"
        )
        notes.append(
            f"  {r['server']}: {r['tokens_per_chunk_frame']:.2f} tokens per chunk frame;"
            f" time to first token p50 {r['first_token_p50_ms']:.1f} ms, p99 {r['first_token_p99_ms']:.1f} ms"
        )
        if "postgres_cpu_us_per_token" in r:
            notes.append(
                f"  {r['server']}: Postgres backends ({r['postgres_backends']}) CPU"
                f" {r['postgres_cpu_us_per_token']:.1f} µs/token (not charged to the server)"
            )
        if r["tokens"] != r["expected_tokens"]:
            notes.append(f"  {r['server']}: {r['tokens']} of {r['expected_tokens']} tokens arrived")
        if r["error_kinds"]:
            notes.append(f"  {r['server']}: errors {r['error_kinds']}")
        if "db" in r:
            db = r["db"]
            notes.append(
                f"  {r['server']}: DB per reply ({db['replies']} replies incl. warm-up):"
                f" {db['message_writes_per_reply']:.2f} message-row writes,"
                f" {db['all_writes_per_reply']:.2f} row writes in all tables,"
                f" {db['commits_per_reply']:.2f} transactions (reads included)"
            )
        if r.get("log_problems") and r["server"] == "ours":
            notes.append(f"  {r['server']}: server log warnings/errors {r['log_problems']}")
        if "profile" in r:
            notes.append(
                f"  {r['server']}: profiled with py-spy (CPU figures include its overhead): {r['profile']}"
            )
        standard = scenario in SCENARIOS and all(params[k] == v for k, v in SCENARIOS[scenario].items())
        if r["server"] == "before" and ours and "cpu_us_per_token" in ours:
            notes.append(
                f"  ours vs before: CPU {ours['cpu_us_per_token'] / r['cpu_us_per_token']:.3f}×;"
                f" first token p50 {ours['first_token_p50_ms']:.1f} vs {r['first_token_p50_ms']:.1f} ms,"
                f" p99 {ours['first_token_p99_ms']:.1f} vs {r['first_token_p99_ms']:.1f} ms"
            )
        if r["server"] == "ours" and seed and standard:
            budget = CPU_BUDGET[scenario]
            p99_ok = r["p99_ms"] * P99_FACTOR <= seed["p99_ms"]
            notes.append(
                f"  ours vs budget: CPU {ratio:.3f}× seed"
                f" (budget ≤ {budget}×: {'ok' if ratio <= budget else 'OVER'});"
                f" p99 {seed['p99_ms'] / r['p99_ms']:.1f}× below seed (budget ≥ {P99_FACTOR}×:"
                f" {'ok' if p99_ok else 'MISSED'})"
            )
    return "\n".join(lines + notes)


def pair_table(scenario: str, params: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The `pair` scenario: one row per instance of the pair, the pair combined, one instance alone,
    the seed (and bare if it ran); latency split by socket role."""
    seed = next((r for r in rows if r["server"] == "seed" and "cpu_us_per_token" in r), None)
    pair = next((r for r in rows if r["server"] == "pair" and "cpu_us_per_token" in r), None)
    single = next((r for r in rows if r["server"] == "ours" and "cpu_us_per_token" in r), None)
    n, t, k = params["clients"], params["turns"], params["tokens"]
    head = (
        f"== {scenario}: {n} conversations x {t} turns x {k} tokens, delay {params['delay_ms']:g} ms;"
        f" pair: sender on one instance, follower on the other (no proxy) =="
    )
    cols = ("config", "µs CPU/token", "× seed", "local p50", "p99", "max", "cross p50", "p99", "max")
    cols += ("tokens", "errors", "wall s")
    widths = (8, 12, 7, 9, 7, 7, 9, 7, 7, 7, 6, 6)
    lines = [
        head,
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cols, widths, strict=True))),
    ]

    def ratio(value: float) -> float | None:
        return value / seed["cpu_us_per_token"] if seed else None

    def row(label: str, cpu: float, local: dict | None, cross: dict | None, tokens, errors, wall) -> None:
        cells = [label.ljust(8), fmt(cpu, ".1f").rjust(12), fmt(ratio(cpu), ".3f").rjust(7)]
        for part in (local, cross):
            for key, width in (("p50_ms", 9), ("p99_ms", 7), ("max_ms", 7)):
                cells.append(fmt(part[key] if part else None, ".1f").rjust(width))
        cells += [f"{tokens}".rjust(7), f"{errors}".rjust(6), fmt(wall, ".1f").rjust(6)]
        lines.append("  ".join(cells))

    notes = []
    for r in rows:
        name = r["server"]
        label = {"pair": "pair", "ours": "single"}.get(name, name)
        if "cpu_us_per_token" not in r:
            lines.append(f"{label:<8}  FAILED: {r.get('failure', '?')}")
            continue
        r["ratio_to_seed"] = ratio(r["cpu_us_per_token"])
        if name == "pair":
            for inst, d in r["instances"].items():
                d["ratio_to_seed"] = ratio(d["cpu_us_per_token"])
                row(
                    f"pair {inst}",
                    d["cpu_us_per_token"],
                    d["local"],
                    d["cross"],
                    d["tokens"],
                    d["errors"],
                    None,
                )
            row(
                "pair A+B",
                r["cpu_us_per_token"],
                r["local"],
                r["cross"],
                r["tokens"],
                r["errors"],
                r["wall_s"],
            )
            for inst, d in r["instances"].items():
                notes.append(
                    f"  pair {inst}: CPU {d['server_cpu_s']:.2f} s via {d['cpu_source']}"
                    f" for {d['tokens']} tokens ({d['local']['tokens']} to its senders,"
                    f" {d['cross']['tokens']} to its followers):"
                    f" main thread {d['main_thread_cpu_us_per_token']:.1f}, other threads"
                    f" {d['other_threads_cpu_us_per_token']:.1f} µs/token"
                )
            notes.append(
                f"  pair: {r['cpu_us_per_upstream_token']:.1f} µs CPU (A+B) per token streamed from upstream"
                f" (each reaches 2 sockets)"
                + (
                    f"; one instance alone: {single['cpu_us_per_token']:.1f} µs for 1 socket, so a"
                    f" cross-instance follower costs about"
                    f" {r['cpu_us_per_upstream_token'] - single['cpu_us_per_token']:.1f} µs per token"
                    if single
                    else ""
                )
            )
            loc, cro = r["local"], r["cross"]
            notes.append(
                f"  pair: tokens per chunk frame local {loc['tokens_per_chunk_frame']:.2f},"
                f" cross {cro['tokens_per_chunk_frame']:.2f}; time to first token (from the sender's send)"
                f" local p50 {loc['first_token_p50_ms']:.1f} / p99 {loc['first_token_p99_ms']:.1f} ms,"
                f" cross p50 {cro['first_token_p50_ms']:.1f} / p99 {cro['first_token_p99_ms']:.1f} ms;"
                f" `start` frame local p50 {loc['start_p50_ms']:.1f} / p99 {loc['start_p99_ms']:.1f} ms,"
                f" cross p50 {cro['start_p50_ms']:.1f} / p99 {cro['start_p99_ms']:.1f} ms"
            )
            notes.append(
                f"  pair: cross latency of the {cro['live_tokens']} tokens sent after the follower's `start`"
                f" (the live path, no backlog): p50 {fmt(cro['live_p50_ms'], '.1f')},"
                f" p99 {fmt(cro['live_p99_ms'], '.1f')}, max {fmt(cro['live_max_ms'], '.1f')} ms"
            )
            for role in ("local", "cross"):
                part = r[role]
                if part["error_kinds"] or part["missing_tokens"] or part["duplicate_tokens"]:
                    notes.append(
                        f"  pair {role}: errors {part['error_kinds']};"
                        f" missing tokens {part['missing_tokens']}, duplicated {part['duplicate_tokens']},"
                        f" offset breaks {part['offset_breaks']}"
                    )
                    for sample in part["error_samples"][:3]:
                        notes.append(f"    e.g. {sample}")
            if r.get("warmup_errors"):
                notes.append(f"  pair: cross-instance warm-up (not measured) failed: {r['warmup_errors']}")
            for inst, d in r["instances"].items():
                if d.get("log_problems"):
                    notes.append(f"  pair {inst}: server log warnings/errors {d['log_problems']}")
                if "server_exit" in d:
                    notes.append(f"  pair {inst}: server exited during the load with {d['server_exit']}")
        else:
            row(label, r["cpu_us_per_token"], r, None, r["tokens"], r["errors"], r["wall_s"])
            notes.append(
                f"  {label}: server CPU {r['server_cpu_s']:.2f} s via {r['cpu_source']};"
                f" {r['tokens_per_chunk_frame']:.2f} tokens per chunk frame; time to first token"
                f" p50 {r['first_token_p50_ms']:.1f} / p99 {r['first_token_p99_ms']:.1f} ms"
            )
            if r["error_kinds"]:
                notes.append(f"  {label}: errors {r['error_kinds']}")
            if r.get("log_problems") and name == "ours":
                notes.append(f"  {label}: server log warnings/errors {r['log_problems']}")
        notes.append(
            f"  {label}: stand-in CPU {r['standin_cpu_s']:.2f} s"
            f" ({r['standin_cpu_us_per_token']:.1f} µs/token, not charged)"
            + (
                f"; Postgres backends ({r['postgres_backends']})"
                f" {r['postgres_cpu_us_per_token']:.1f} µs/token (not charged)"
                if "postgres_cpu_us_per_token" in r
                else ""
            )
        )
        if r["tokens"] != r["expected_tokens"]:
            notes.append(f"  {label}: {r['tokens']} of {r['expected_tokens']} tokens arrived")
        if "db" in r:
            db = r["db"]
            notes.append(
                f"  {label}: DB per reply ({db['replies']} replies incl. warm-up):"
                f" {db['message_writes_per_reply']:.2f} message-row writes,"
                f" {db['all_writes_per_reply']:.2f} row writes in all tables,"
                f" {db['commits_per_reply']:.2f} transactions (reads included)"
            )
        if "profile" in r:
            notes.append(
                f"  {label}: profiled with py-spy (CPU figures include its overhead): {r['profile']}"
            )
    standard = all(params[key] == value for key, value in SCENARIOS["pair"].items())
    if pair and seed:
        budget = CPU_BUDGET["pair"]
        parts = [
            f"{inst} {d['ratio_to_seed']:.3f}× ({'ok' if d['ratio_to_seed'] <= budget else 'OVER'})"
            for inst, d in pair["instances"].items()
        ]
        if single:
            parts.append(f"single instance {single['ratio_to_seed']:.3f}×")
        p99 = [
            f"{role} {seed['p99_ms'] / pair[role]['p99_ms']:.1f}×"
            for role in ("local", "cross")
            if pair[role]["p99_ms"] == pair[role]["p99_ms"] and pair[role]["p99_ms"] > 0
        ]
        notes.append(
            f"  ours vs budget{'' if standard else ' (non-standard parameters: indicative only)'}:"
            f" CPU per relayed token {', '.join(parts)} of the seed's (budget ≤ {budget}× per instance);"
            f" p99 below the seed's: {', '.join(p99)} (budget ≥ {P99_FACTOR}×)"
        )
    return "\n".join(lines + notes)


def nginx_table(scenario: str, params: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The `nginx` scenario: streams (per instance and combined) and idle sockets, two instances vs one."""
    n, t, k = params["clients"], params["turns"], params["tokens"]
    names = {"two": "2 inst", "one": "1 inst"}
    out = [
        f"== {scenario} streams: {n} clients x {t} turns x {k} tokens, delay {params['delay_ms']:g} ms,"
        " through nginx (deploy/nginx.conf, least_conn), each client on its own conversation ==",
        "  ".join(
            c.rjust(w) if i > 1 else c.ljust(w)
            for i, (c, w) in enumerate(
                zip(
                    ("config", "inst", "sockets", "ms CPU/1k tok", "p50 ms", "p99 ms", "max ms", "tokens")
                    + ("errors", "wall s"),
                    (6, 4, 7, 13, 8, 8, 8, 7, 6, 6),
                    strict=True,
                )
            )
        ),
    ]
    notes: list[str] = []

    def line(config: str, inst: str, d: dict[str, Any], sockets: Any, wall: Any) -> None:
        cells = [config.ljust(6), inst.ljust(4), f"{sockets}".rjust(7)]
        cells.append(fmt(d["cpu_ms_per_1k_tokens"], ".1f").rjust(13))
        cells += [fmt(d[key], ".1f").rjust(8) for key in ("p50_ms", "p99_ms", "max_ms")]
        cells += [f"{d['tokens']}".rjust(7), f"{d['errors']}".rjust(6), fmt(wall, ".1f").rjust(6)]
        out.append("  ".join(cells))

    for r in rows:
        label = names.get(r["server"], r["server"])
        if "streams" not in r:
            out.append(f"{label:<6}  FAILED: {r.get('failure', '?')}")
            continue
        s = r["streams"]
        for inst, d in s["instances"].items():
            line(label, inst, d, d["sockets"], None)
        if len(s["instances"]) > 1:
            line(label, "all", s, sum(d["sockets"] for d in s["instances"].values()), s["wall_s"])
        else:
            out[-1] = out[-1][:-6] + fmt(s["wall_s"], ".1f").rjust(6)
        notes.append(f"  {label}: loadavg before {' '.join(f'{x:.2f}' for x in r['loadavg_before'])}")
        for inst, d in s["instances"].items():
            notes.append(
                f"  {label} {inst}: CPU {d['server_cpu_s']:.2f} s via {d['cpu_source']} for {d['tokens']}"
                f" tokens to its {d['sockets']} sockets: main thread {d['main_thread_ms_per_1k_tokens']:.1f},"
                f" other threads {d['other_threads_ms_per_1k_tokens']:.1f} ms/1k tokens;"
                f" {d['tokens_per_chunk_frame']:.2f} tokens per chunk frame; time to first token"
                f" p50 {d['first_token_p50_ms']:.1f} / p99 {d['first_token_p99_ms']:.1f} ms"
            )
        notes.append(
            f"  {label}: nginx CPU {s['nginx_cpu_s']:.2f} s ="
            f" {s['nginx_cpu_ms_per_1k_tokens']:.1f} ms/1k tokens (not charged);"
            f" stand-in {s['standin_cpu_ms_per_1k_tokens']:.1f}, Postgres backends"
            f" ({s['postgres_backends']}) {s['postgres_cpu_ms_per_1k_tokens']:.1f} ms/1k tokens (not charged)"
        )
        if s["tokens"] != s["expected_tokens"]:
            notes.append(f"  {label}: {s['tokens']} of {s['expected_tokens']} tokens arrived")
        if s["error_kinds"]:
            notes.append(f"  {label}: stream errors {s['error_kinds']}")
            for sample in s["error_samples"][:3]:
                notes.append(f"    e.g. {sample}")
        if s["unattributed_sockets"] or s["sockets_in_two_logs"]:
            notes.append(
                f"  {label}: {s['unattributed_sockets']} sockets ({s['unattributed_tokens']} tokens) in no"
                f" instance's access log; in two logs: {s['sockets_in_two_logs']}"
            )
        notes.append(f"  {label}: nginx access log, streams: {s['nginx_access']}")
        for inst, d in s["instances"].items():
            if d.get("log_problems"):
                notes.append(f"  {label} {inst}: server log warnings/errors {d['log_problems']}")
            if "server_exit" in d:
                notes.append(f"  {label} {inst}: server exited during the run with {d['server_exit']}")
        if r.get("nginx_errors"):
            notes.append(f"  {label}: nginx error log {r['nginx_errors']}")
        db = r["db"]
        notes.append(
            f"  {label}: DB per reply ({db['replies']} replies incl. warm-up):"
            f" {db['message_writes_per_reply']:.2f} message-row writes,"
            f" {db['commits_per_reply']:.2f} transactions"
        )
    two = next((r for r in rows if r["server"] == "two" and "streams" in r), None)
    one = next((r for r in rows if r["server"] == "one" and "streams" in r), None)
    if two and one:
        a, b = two["streams"], one["streams"]
        notes.append(
            f"  two vs one: CPU (all instances) {a['cpu_ms_per_1k_tokens']:.1f}"
            f" vs {b['cpu_ms_per_1k_tokens']:.1f} ms/1k tokens;"
            f" p50 {a['p50_ms']:.1f} vs {b['p50_ms']:.1f}, p99 {a['p99_ms']:.1f} vs"
            f" {b['p99_ms']:.1f} ms; nginx {a['nginx_cpu_ms_per_1k_tokens']:.1f} vs"
            f" {b['nginx_cpu_ms_per_1k_tokens']:.1f} ms/1k tokens"
        )

    idle_count, hold = params["idle_sockets"], params["idle_s"]
    out += notes + [
        "",
        f"== {scenario} idle: {idle_count} idle sockets through nginx (handshake + `history`, then nothing),"
        f" held {hold:g} s; RSS of each Daphne ==",
        "  ".join(
            c.rjust(w) if i > 1 else c.ljust(w)
            for i, (c, w) in enumerate(
                zip(
                    ("config", "inst", "sockets", "RSS before MiB", "held MiB", "KiB/socket", "at open")
                    + ("after close", "errors", "open s"),
                    (6, 4, 7, 14, 8, 10, 7, 11, 6, 6),
                    strict=True,
                )
            )
        ),
    ]
    notes = []
    for r in rows:
        label = names.get(r["server"], r["server"])
        if "idle" not in r:
            out.append(f"{label:<6}  FAILED: {r.get('failure', '?')}")
            continue
        idle = r["idle"]
        for inst, d in idle["instances"].items():
            cells = [label.ljust(6), inst.ljust(4), f"{d['sockets']}".rjust(7)]
            cells.append(fmt(d["rss_before_kib"] / 1024, ".1f").rjust(14))
            cells.append(fmt(d["rss_held_kib"] / 1024, ".1f").rjust(8))
            cells.append(fmt(d["kib_per_socket"], ".1f").rjust(10))
            cells.append(fmt(d["kib_per_socket_at_open"], ".1f").rjust(7))
            cells.append(fmt(d["rss_after_close_kib"] / 1024, ".1f").rjust(11))
            cells += [f"{idle['errors']}".rjust(6), fmt(idle["open_s"], ".1f").rjust(6)]
            out.append("  ".join(cells))
        nr = idle["nginx_rss_kib"]
        notes.append(
            f"  {label}: {idle['opened']} of {idle['sockets']} opened in {idle['open_s']:.1f} s"
            f" ({IDLE_CONNECT_CONCURRENCY} handshakes at a time), closed in {idle['close_s']:.1f} s;"
            f" nginx RSS {nr['before'] / 1024:.1f} -> {nr['held'] / 1024:.1f} MiB"
            f" = {fmt(idle['nginx_kib_per_socket'], '.1f')} KiB/socket (not charged)"
        )
        if idle["error_kinds"]:
            notes.append(f"  {label}: idle errors {idle['error_kinds']}")
        rejected = {inst: d["rejected"] for inst, d in idle["instances"].items() if d["rejected"]}
        if rejected or not idle["all_disconnected"]:
            notes.append(
                f"  {label}: WSREJECT per instance {rejected};"
                f" all accepted sockets logged WSDISCONNECT: {idle['all_disconnected']}"
            )
        notes.append(f"  {label}: nginx access log, idle: {idle['nginx_access']}")
    return "\n".join(out + notes)


# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario",
        default="all",
        help="burst, paced, pair, nginx (comma-separated), all (= burst,paced; the default) or all-with-pair",
    )
    parser.add_argument(
        "--servers",
        help="comma-separated: ours,seed,bare (default: all three; `pair` runs bare only when named)",
    )
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK} per scenario")
    parser.add_argument("--clients", type=int, help="override the scenario's client count")
    parser.add_argument("--turns", type=int, help="override the scenario's turns per client")
    parser.add_argument("--tokens", type=int, help="override the scenario's tokens per reply")
    parser.add_argument("--delay-ms", type=float, help="override the scenario's delay between tokens")
    parser.add_argument(
        "--idle-sockets", type=int, help=f"nginx: idle sockets to open (default {NGINX_IDLE['idle_sockets']})"
    )
    parser.add_argument(
        "--idle-s",
        type=float,
        help=f"nginx: seconds to hold the idle sockets (default {NGINX_IDLE['idle_s']:g})",
    )
    parser.add_argument(
        "--turn-timeout", type=float, default=60.0, help="seconds before a turn counts as stuck"
    )
    parser.add_argument(
        "--py-spy", metavar="PATH", help="py-spy binary: record a raw profile during the load"
    )
    parser.add_argument("--py-spy-servers", default="ours", help="servers to profile with --py-spy")
    parser.add_argument(
        "--keep-db", action="store_true", help=f"do not drop the {BENCH_DB} database at the end"
    )
    parser.add_argument(
        "--before",
        metavar="DIR",
        type=Path,
        help="an earlier checkout of this project (e.g. `git worktree add DIR <commit>`): runs beside ours",
    )
    args = parser.parse_args(argv)
    if args.scenario == "all":
        args.scenarios = list(DEFAULT_SCENARIOS)
    elif args.scenario == "all-with-pair":
        args.scenarios = [*DEFAULT_SCENARIOS, "pair"]
    else:
        args.scenarios = [s.strip() for s in args.scenario.split(",") if s.strip()]
    args.servers_named = args.servers is not None
    servers = args.servers if args.servers_named else ",".join(ALL_SERVERS)
    args.server_list = [s.strip() for s in servers.split(",") if s.strip()]
    if args.before is not None:
        if not (args.before / "manage.py").exists():
            parser.error(f"--before {args.before}: not a checkout of this project")
        if "before" not in args.server_list:  # named in --servers, it keeps its place (to swap the order)
            at = args.server_list.index("ours") + 1 if "ours" in args.server_list else 0
            args.server_list.insert(at, "before")
    args.py_spy_servers = args.py_spy_servers.split(",")
    for s in args.scenarios:
        if s not in SCENARIOS:
            parser.error(f"unknown scenario {s!r}")
    for s in args.server_list:
        if s not in (*ALL_SERVERS, "before"):
            parser.error(f"unknown server {s!r}")
    return args


def scenario_params(name: str, args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = dict(SCENARIOS[name])
    if name == "nginx":
        params.update(QUICK_IDLE if args.quick else NGINX_IDLE)
    if args.quick:
        params.update(QUICK)
    for key in ("clients", "turns", "tokens", "delay_ms", "idle_sockets", "idle_s"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    return params


def scenario_configs(scenario: str, args: argparse.Namespace) -> list[str]:
    """What runs in a scenario, in order: the servers; for `pair`, the two-instance pair, then ours alone
    (same conversations, senders only), then the seed (bare only when --servers names it); for `nginx`,
    two instances of ours behind nginx, then one."""
    if scenario == "nginx":
        return ["two", "one"] if "ours" in args.server_list else []
    if scenario != "pair":
        return list(args.server_list)
    configs = ["pair", "ours"] if "ours" in args.server_list else []
    configs += [s for s in ("seed", "bare") if s in args.server_list and (s == "seed" or args.servers_named)]
    return configs


def main(argv: list[str] | None = None) -> int:
    global BEFORE_DIR
    args = parse_args(argv)
    BEFORE_DIR = args.before.resolve() if args.before is not None else None
    # What the scenarios run: ours (pair and nginx configurations are ours too), seed, bare.
    needed = {
        "ours" if c in ("pair", "two", "one", "before") else c
        for s in args.scenarios
        for c in scenario_configs(s, args)
    }
    if not (BASELINES / "seed_server.py").exists() and {"seed", "bare"} & needed:
        log(f"baselines not found in {BASELINES} (set BENCH_BASELINES_DIR)")
        return 2
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = secrets.token_hex(3)
    run_dir = RESULTS / "logs" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "timestamp": stamp,
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "loadavg_at_start": os.getloadavg(),
        },
        "baselines": str(BASELINES),
        "scenarios": {},
    }

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started in the background, where SIGINT is ignored
    created_db = False
    status = 0
    try:
        if "seed" in needed:
            ensure_seed_venv()
        if "nginx" in args.scenarios:
            raise_nofile()  # before any server starts: Daphne inherits it
        if "ours" in needed:
            preflight_ours()
            log(f"creating and migrating the scratch database {BENCH_DB}")
            bench_db_create()
            created_db = True
            migrate_bench_db()
        for scenario in args.scenarios:
            params = scenario_params(scenario, args)
            rows = []
            for name in scenario_configs(scenario, args):
                try:
                    if name == "pair":
                        rows.append(measure_pair(scenario, params, args, run_dir, run_id))
                    elif scenario == "nginx":
                        rows.append(measure_nginx(name, scenario, params, args, run_dir, run_id))
                    else:
                        rows.append(measure(name, scenario, params, args, run_dir, run_id))
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    status = 1
                    log(f"[{scenario}] {name} FAILED: {exc}")
                    rows.append({"server": name, "failure": str(exc)[:2000]})
            render = {"pair": pair_table, "nginx": nginx_table}.get(scenario, table)
            text = render(scenario, params, rows)
            print(text + "\n", flush=True)
            report["scenarios"][scenario] = {"params": params, "results": rows}
            if any(r.get("errors") for r in rows):
                status = 1
    except KeyboardInterrupt:
        log("interrupted: stopping servers")
        status = 130
    except RuntimeError as exc:
        log(f"cannot run: {exc}")
        status = 2
    finally:
        stop_all()
        if created_db and not args.keep_db:
            bench_db_drop()
        if report["scenarios"]:
            out = RESULTS / f"{stamp}.json"
            out.write_text(json.dumps(report, indent=2, default=str) + "\n")
            print(f"results: {out.relative_to(REPO)}   logs: {run_dir.relative_to(REPO)}/")
    return status


if __name__ == "__main__":
    sys.exit(main())
