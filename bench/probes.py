"""What the bench reads besides its clients: CPU and memory of processes (from /proc), the bench database's
counters and its backends' CPU, and what the servers and nginx wrote in their logs."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .servers import bench_db_name, pg_connect

CLK_TCK = os.sysconf("SC_CLK_TCK")

# --------------------------------------------------------------------------------------------------
# CPU and memory from /proc


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


@dataclasses.dataclass(frozen=True)
class Cpu:
    """CPU of one process (and its descendants) between two samples."""

    ns: int
    source: str  # "schedstat" or "stat": see cpu_delta_ns()
    main_ns: int  # the root process's main thread (the event loop)
    other_ns: int  # every other thread (schedstat)

    @classmethod
    def between(cls, before: CpuSample, after: CpuSample) -> Cpu:
        ns, source = cpu_delta_ns(before, after)
        main = after.main_ns - before.main_ns
        return cls(ns, source, main, (after.sched_ns - before.sched_ns) - main)


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


# --------------------------------------------------------------------------------------------------
# Postgres (ours only)


def db_counters(kind: str = "ours") -> dict[str, int]:
    """Row writes on our tables, commits in the bench database of `kind`, and assistant rows so far."""
    with pg_connect(bench_db_name(kind)) as conn:
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


def pg_backends(kind: str = "ours") -> list[int]:
    """Pids of the Postgres backends serving the bench database of `kind` (the server's connections)."""
    with pg_connect(bench_db_name(kind)) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def pg_backends_cpu(kind: str = "ours") -> dict[int, int]:
    """CPU so far of each backend of the bench database (ns, from /proc, readable for any user)."""
    return {pid: thread_ns(pid, pid) for pid in pg_backends(kind)}


class PgBackendsWatch:
    """The number of backends serving the bench database of `kind` (the server's connections), polled every
    `every` seconds on a thread of its own, with the peak of each phase the caller names (mark())."""

    def __init__(self, kind: str = "ours", every: float = 0.25) -> None:
        self.kind, self.every = kind, every
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        self.failure = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-backends", daemon=True)

    def __enter__(self) -> PgBackendsWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(10)

    def mark(self, phase: str) -> None:
        self.phase = phase

    @property
    def peak(self) -> int:
        return max(self.peaks.values(), default=0)

    def _run(self) -> None:
        query = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        try:
            with pg_connect(bench_db_name(self.kind)) as conn:
                while True:
                    conn.execute("SELECT pg_stat_clear_snapshot()")
                    count = int(conn.execute(query).fetchone()[0])
                    phase = self.phase
                    self.peaks[phase] = max(self.peaks.get(phase, 0), count)
                    if self._stop.wait(self.every):
                        return
        except Exception as exc:  # reported, not raised: the run goes on without this figure
            self.failure = f"{type(exc).__name__}: {str(exc)[:200]}"


def db_counters_settled(kind: str = "ours", wait: float = 3.0) -> dict[str, int]:
    """Backends flush their statistics at exit; poll briefly until the numbers stop moving."""
    deadline = time.monotonic() + wait
    last = db_counters(kind)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = db_counters(kind)
        if now == last:
            break
        last = now
    return last


def db_per_reply(before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    replies = after["replies"] - before["replies"]
    return {
        "replies": replies,
        "message_writes_per_reply": (after["message_writes"] - before["message_writes"]) / max(replies, 1),
        "all_writes_per_reply": (after["all_writes"] - before["all_writes"]) / max(replies, 1),
        "commits_per_reply": (after["commits"] - before["commits"]) / max(replies, 1),
    }


# --------------------------------------------------------------------------------------------------
# Logs


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
