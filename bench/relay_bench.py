"""Relay benchmark: our server beside the seed and the bare relay, against the same local stand-in.

Not a test. For each scenario and each server, one at a time: start a fresh stand-in, start the server,
warm it up with one short reply, then drive N WebSocket clients x T turns x K stamped tokens through it
and measure the server's CPU per relayed token (from /proc, load phase only), the stand-in's CPU, and the
relay latency of every token (client receive time minus the stand-in's send stamp). See bench/README.md.

usage: .venv/bin/python bench/relay_bench.py [--scenario burst|paced|all] [--servers ours,seed,bare]
                                             [--quick] [--clients N --turns T --tokens K --delay-ms D]
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

SCENARIOS: dict[str, dict[str, float]] = {
    "burst": {"clients": 20, "turns": 3, "tokens": 500, "delay_ms": 0},
    "paced": {"clients": 100, "turns": 2, "tokens": 200, "delay_ms": 5},
}
QUICK = {"clients": 4, "turns": 1, "tokens": 50}
# The design's budget for ours: CPU per token relative to the seed, per scenario; p99 at least 10x lower.
CPU_BUDGET = {"burst": 0.25, "paced": 0.5}
P99_FACTOR = 10
ALL_SERVERS = ("ours", "seed", "bare")


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
        DJANGO_SECRET_KEY="bench-" + secrets.token_urlsafe(32),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DEDALUS_API_KEY="bench",
        DEDALUS_BASE_URL=standin_url,
        CHAT_LOG_LEVEL="WARNING",
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


def start_server(name: str, standin_url: str, log_path: Path) -> Server:
    port = free_port()
    if name == "ours":
        daphne = OUR_PYTHON.parent / "daphne"
        argv = [str(daphne), "-b", HOST, "-p", str(port), "chatproject.asgi:application"]
        env, cwd = ours_env(standin_url), REPO
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
    tokens: int = 0
    turns_ok: int = 0
    missing_tokens: int = 0
    duplicate_tokens: int = 0
    chunk_frames: int = 0
    first_token_ms: list[float] = dataclasses.field(default_factory=list)  # send -> first chunk, per turn
    errors: Counter = dataclasses.field(default_factory=Counter)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


async def client_connect(
    session: aiohttp.ClientSession, server: Server, sid: str, stats: LoadStats, limit_s: float
):
    try:
        async with asyncio.timeout(limit_s):
            return await session.ws_connect(
                server.url + sid, headers={"Origin": server.origin}, max_msg_size=0, autoping=True
            )
    except Exception as exc:
        stats.errors[f"connect: {type(exc).__name__} {str(exc)[:80]}"] += 1
        return None


async def client_turns(ws, turns: int, tokens: int, delay_ms: float, stats: LoadStats, turn_timeout: float):
    message = orjson.dumps(
        {"message": f"bench [[standin stamp=1 tokens={tokens} delay_ms={delay_ms:g}]]", "model": MODEL}
    ).decode()
    latencies = stats.latencies_us
    text_type = aiohttp.WSMsgType.TEXT
    try:
        for _ in range(turns):
            counts = bytearray(tokens)
            tail = ""
            failed = None
            first = True
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
                            stats.chunk_frames += 1
                            if first:
                                first = False
                                stats.first_token_ms.append((now_us * 1000 - sent_ns) / 1e6)
                            parts = (tail + frame["content"]).split(" ")
                            tail = parts.pop()  # a token ends with a space; keep a split one for later
                            for part in parts:
                                if not part:
                                    continue
                                index, _, stamp = part.partition("@")
                                i = int(index)
                                latencies.append(now_us - int(stamp))
                                if 0 <= i < tokens:
                                    if counts[i] < 255:
                                        counts[i] += 1
                                else:
                                    stats.errors["token index out of range"] += 1
                        elif kind == "done":
                            break
                        elif kind == "error":
                            failed = f"error frame: {frame.get('code', '')} {str(frame.get('message'))[:80]}"
                            break
                        # history, start, tool: nothing to measure
            except TimeoutError:
                failed = f"turn timeout ({turn_timeout:g} s)"
            missing = counts.count(0)
            dups = sum(c - 1 for c in counts if c > 1)
            got = tokens - missing
            stats.tokens += got
            if failed:
                stats.errors[failed] += 1
                return  # the socket is in an unknown state: this client stops here
            if missing or dups:
                stats.missing_tokens += missing
                stats.duplicate_tokens += dups
                stats.errors["gaps or duplicates in a turn"] += 1
            else:
                stats.turns_ok += 1
    except Exception as exc:
        stats.errors[f"client: {type(exc).__name__} {str(exc)[:80]}"] += 1
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await ws.close()


async def run_load(
    server: Server, *, clients: int, turns: int, tokens: int, delay_ms: float, tag: str, turn_timeout: float
) -> tuple[LoadStats, float]:
    """Connect every client, then run every client's turns at once. Return the stats and wall seconds."""
    stats = LoadStats()
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        started = time.monotonic()
        sockets = await asyncio.gather(
            *(client_connect(session, server, f"{tag}-{i}", stats, 30) for i in range(clients))
        )
        await asyncio.gather(
            *(
                client_turns(ws, turns, tokens, delay_ms, stats, turn_timeout)
                for ws in sockets
                if ws is not None
            )
        )
        wall = time.monotonic() - started
    return stats, wall


def percentile(sorted_values: list[int] | list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * (len(sorted_values) - 1) + 0.5))]


# --------------------------------------------------------------------------------------------------
# One server in one scenario


def measure(
    name: str, scenario: str, params: dict[str, Any], args: argparse.Namespace, run_dir: Path, run_id: str
) -> dict[str, Any]:
    clients, turns, tokens, delay_ms = (
        params["clients"],
        params["turns"],
        params["tokens"],
        params["delay_ms"],
    )
    result: dict[str, Any] = {"server": name}
    standin, standin_url = start_standin(run_dir / f"{scenario}-{name}-standin.log", tokens, delay_ms)
    server = None
    profiler = None
    try:
        db_before = db_counters_settled() if name == "ours" else None
        server = start_server(name, standin_url, run_dir / f"{scenario}-{name}.log")
        result["command"] = server.command
        result["standin_url"] = standin_url
        log(f"[{scenario}] {name}: pid {server.proc.pid} on port {server.port}; warming up")
        tag = f"b{run_id}-{scenario}-{name}"
        for attempt in range(3):
            warm, _ = asyncio.run(
                run_load(
                    server,
                    clients=1,
                    turns=1,
                    tokens=20,
                    delay_ms=0,
                    tag=f"{tag}-w{attempt}",
                    turn_timeout=30,
                )
            )
            if not warm.error_count and warm.tokens == 20:
                break
            log(f"[{scenario}] {name}: warm-up failed: {dict(warm.errors)}")
        else:
            raise RuntimeError(f"warm-up failed 3 times: {dict(warm.errors)}\n{server.proc.log_tail()}")
        if args.py_spy and name in args.py_spy_servers:
            out = run_dir / f"{scenario}-{name}-profile.txt"
            profiler = subprocess.Popen(
                [args.py_spy, "record", "--pid", str(server.proc.pid), "-o", str(out), "-f", "raw"]
                + ["-r", "200", "--nonblocking"],
                stdout=subprocess.DEVNULL,
                stderr=open(run_dir / f"{scenario}-{name}-py-spy.log", "wb"),  # noqa: SIM115
                start_new_session=True,
            )
            result["profile"] = str(out)
            time.sleep(1.0)
        log(
            f"[{scenario}] {name}: {clients} clients x {turns} turns x {tokens} tokens, delay {delay_ms:g} ms"
        )
        pg0 = pg_backends_cpu() if name == "ours" else None
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
        pg1 = pg_backends_cpu() if name == "ours" else None
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            try:
                profiler.wait(30)
            except subprocess.TimeoutExpired:
                profiler.kill()
            profiler = None
        server_ns, source = cpu_delta_ns(cpu0, cpu1)
        standin_ns, _ = cpu_delta_ns(standin0, standin1)
        lat = sorted(stats.latencies_us)

        def per_token(ns: int) -> float:
            return ns / 1000 / stats.tokens if stats.tokens else float("nan")

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
            p50_ms=percentile(lat, 0.50) / 1000,
            p99_ms=percentile(lat, 0.99) / 1000,
            max_ms=(lat[-1] / 1000) if lat else float("nan"),
            tokens=stats.tokens,
            expected_tokens=clients * turns * tokens,
            turns_ok=stats.turns_ok,
            missing_tokens=stats.missing_tokens,
            duplicate_tokens=stats.duplicate_tokens,
            errors=stats.error_count,
            error_kinds=dict(stats.errors),
            wall_s=wall,
            tokens_per_chunk_frame=stats.tokens / stats.chunk_frames if stats.chunk_frames else float("nan"),
            first_token_p50_ms=percentile(sorted(stats.first_token_ms), 0.50),
            first_token_p99_ms=percentile(sorted(stats.first_token_ms), 0.99),
        )
        if pg0 is not None and pg1 is not None:
            # Backends that ended during the load are missed; daphne keeps its connections (CONN_MAX_AGE).
            pg_ns = sum(ns - pg0.get(pid, 0) for pid, ns in pg1.items())
            result["postgres_cpu_us_per_token"] = per_token(pg_ns)
            result["postgres_backends"] = len(pg1)
        if server.proc.alive():
            server.proc.stop()
        else:
            result["server_exit"] = server.proc.popen.returncode
            result["server_log_tail"] = server.proc.log_tail()
        if db_before is not None:
            db_after = db_counters_settled()
            replies = db_after["replies"] - db_before["replies"]
            result["db"] = {
                "replies": replies,
                "message_writes_per_reply": (db_after["message_writes"] - db_before["message_writes"])
                / max(replies, 1),
                "all_writes_per_reply": (db_after["all_writes"] - db_before["all_writes"]) / max(replies, 1),
                "commits_per_reply": (db_after["commits"] - db_before["commits"]) / max(replies, 1),
            }
    finally:
        if profiler is not None:
            with contextlib.suppress(Exception):
                profiler.kill()
        if server is not None:
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
        if "profile" in r:
            notes.append(
                f"  {r['server']}: profiled with py-spy (CPU figures include its overhead): {r['profile']}"
            )
        standard = scenario in SCENARIOS and all(params[k] == v for k, v in SCENARIOS[scenario].items())
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


# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="all", help="burst, paced, or all (default: all)")
    parser.add_argument("--servers", default=",".join(ALL_SERVERS), help="comma-separated: ours,seed,bare")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK} per scenario")
    parser.add_argument("--clients", type=int, help="override the scenario's client count")
    parser.add_argument("--turns", type=int, help="override the scenario's turns per client")
    parser.add_argument("--tokens", type=int, help="override the scenario's tokens per reply")
    parser.add_argument("--delay-ms", type=float, help="override the scenario's delay between tokens")
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
    args = parser.parse_args(argv)
    args.scenarios = list(SCENARIOS) if args.scenario == "all" else args.scenario.split(",")
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.py_spy_servers = args.py_spy_servers.split(",")
    for s in args.scenarios:
        if s not in SCENARIOS:
            parser.error(f"unknown scenario {s!r}")
    for s in args.server_list:
        if s not in ALL_SERVERS:
            parser.error(f"unknown server {s!r}")
    return args


def scenario_params(name: str, args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = dict(SCENARIOS[name])
    if args.quick:
        params.update(QUICK)
    for key in ("clients", "turns", "tokens", "delay_ms"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    return params


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (BASELINES / "seed_server.py").exists() and {"seed", "bare"} & set(args.server_list):
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
        if "seed" in args.server_list:
            ensure_seed_venv()
        if "ours" in args.server_list:
            preflight_ours()
            log(f"creating and migrating the scratch database {BENCH_DB}")
            bench_db_create()
            created_db = True
            migrate_bench_db()
        for scenario in args.scenarios:
            params = scenario_params(scenario, args)
            rows = []
            for name in args.server_list:
                try:
                    rows.append(measure(name, scenario, params, args, run_dir, run_id))
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    status = 1
                    log(f"[{scenario}] {name} FAILED: {exc}")
                    rows.append({"server": name, "failure": str(exc)[:2000]})
            text = table(scenario, params, rows)
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
