"""The scenarios, and the one runner every configuration of each goes through (Configuration.run): a fresh
stand-in, the configuration's servers (each warmed up), CPU of every process sampled around the load, then
everything stopped, whatever happened. What differs is in three families: Streams (one server), Pair (two
instances of ours, a sender and a follower per conversation) and BehindNginx (nginx in front of two
instances of ours, or one)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.processes import SERVE_FLAGS, HttpServer, Nginx, Process, standin_start

from . import log
from .api_load import api_key_made, run_api_load
from .load import (
    IDLE_CONNECT_CONCURRENCY,
    Load,
    LoadStats,
    SocketCrowd,
    latency_summary,
    run_idle_sockets,
    run_load,
    run_pair_load,
    run_stream_clients,
)
from .probes import (
    Cpu,
    PgBackendsWatch,
    cpu_sample,
    daphne_ws_events,
    db_counters_settled,
    db_per_reply,
    log_problems,
    nginx_access_summary,
    nginx_error_summary,
    pg_backends_cpu,
    rss_kib,
    wait_for_disconnects,
)
from .servers import OURS, REPO, command_line, nginx_start, raise_nofile, redis_flush, server_start

SCENARIOS: dict[str, dict[str, float]] = {
    "burst": {"clients": 20, "turns": 3, "tokens": 500, "delay_ms": 0},
    "paced": {"clients": 100, "turns": 2, "tokens": 200, "delay_ms": 5},
    # Two instances of ours; `clients` counts conversations (a sender and a follower socket each).
    "pair": {"clients": 100, "turns": 1, "tokens": 300, "delay_ms": 5},
    # nginx in front of two instances of ours, then of one; each client on its own conversation.
    "nginx": {"clients": 200, "turns": 1, "tokens": 300, "delay_ms": 5},
    # One instance of ours holding N sockets; `clients` (the streaming ones) is N x SCALE's stream_share.
    "scale": {"clients": 0, "turns": 1, "tokens": 200, "delay_ms": 5},
    # Ours, the same turns through the page's socket and through the OpenAI-compatible API, in the order
    # page, api, api, page (the first server of a run often measures a little worse).
    "api": {"clients": 100, "turns": 2, "tokens": 200, "delay_ms": 5},
}
API_CONFIGS = ("page-1", "api-1", "api-2", "page-2")
# The `nginx` scenario's second phase: this many idle sockets (handshake + `history`), held this long.
NGINX_IDLE = {"idle_sockets": 1000, "idle_s": 10.0}
QUICK_IDLE = {"idle_sockets": 40, "idle_s": 2.0}
# The `scale` scenario: one configuration per socket count; the idle window is measured after a window of
# the same server with no socket open (`baseline_s`), and then one socket in 1/stream_share streams.
SCALE = {"sockets": (1000, 5000, 10000), "stream_share": 0.1, "idle_s": 30.0, "baseline_s": 10.0}
QUICK_SCALE = {"sockets": (200,), "idle_s": 5.0, "baseline_s": 3.0}
# Browser sessions of the `scale` scenario: this many sockets each, the per-owner maximum it keeps on
# (CHAT_MAX_SOCKETS_PER_OWNER), so the sockets are counted and their entries renewed as in production.
SCALE_SOCKETS_PER_BROWSER = 20
# File descriptors besides the sockets: the process's own files, pools, logs.
NOFILE_MARGIN = 1024
# `--scenario all` (and `make bench`); `pair` is opt-in: `--scenario pair` or `--scenario all-with-pair`.
DEFAULT_SCENARIOS = ("burst", "paced")
QUICK = {"clients": 4, "turns": 1, "tokens": 50}
ALL_SERVERS = ("ours", "seed", "bare")
INSTANCES = ("A", "B")
# channels_redis' BZPOPMIN timeout (brpop_timeout, 5 s) plus a margin: see Pair.prepare().
STRAY_RECEIVE_SETTLE_S = 6.0


def scenario_params(name: str, args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = dict(SCENARIOS[name])
    if name == "nginx":
        params.update(QUICK_IDLE if args.quick else NGINX_IDLE)
    if name == "scale":
        params.update(SCALE)
        if args.quick:
            params.update(QUICK_SCALE)
        params["sockets"] = scale_sockets(args)
    if args.quick:
        params.update(QUICK)
    for key in ("clients", "turns", "tokens", "delay_ms", "idle_sockets", "idle_s"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    return params


def scenario_configs(scenario: str, args: argparse.Namespace) -> list[str]:
    """What runs in a scenario, in order: the servers; for `pair`, the two-instance pair (and `before`'s
    pair, in --servers' order), then ours alone (same conversations, senders only), then the seed (bare
    only when --servers names it); for `nginx`, two instances of ours behind nginx, then one."""
    if scenario == "nginx":
        return ["two", "one"] if "ours" in args.server_list else []
    if scenario == "scale":
        return [str(n) for n in scale_sockets(args)] if "ours" in args.server_list else []
    if scenario == "api":
        return list(API_CONFIGS) if "ours" in args.server_list else []
    if scenario != "pair":
        return list(args.server_list)
    # `before` (--before) runs its own pair, in the place --servers gives it, to compare with ours.
    pairs = {"ours": "pair", "before": "pair-before"}
    configs = [pairs[s] for s in args.server_list if s in pairs]
    configs += ["ours"] if "ours" in args.server_list else []
    configs += [s for s in ("seed", "bare") if s in args.server_list and (s == "seed" or args.servers_named)]
    return configs


def scale_sockets(args: argparse.Namespace) -> tuple[int, ...]:
    """The socket counts of the `scale` scenario, one configuration each."""
    if args.scale_sockets:
        return tuple(args.scale_sockets)
    return QUICK_SCALE["sockets"] if args.quick else SCALE["sockets"]


@dataclasses.dataclass(frozen=True)
class Bench:
    """What every configuration of one run shares."""

    args: argparse.Namespace
    run_dir: Path
    run_id: str


def configuration(bench: Bench, scenario: str, config: str, params: dict[str, Any]) -> Configuration:
    if config in ("pair", "pair-before"):
        return Pair(bench, scenario, config, params)
    if scenario == "nginx":
        return BehindNginx(bench, scenario, config, params)
    if scenario == "scale":
        return Scale(bench, scenario, config, params)
    if scenario == "api":
        return PageOrApi(bench, scenario, config, params)
    return Streams(bench, scenario, config, params)


def per_token(ns: float, tokens: int) -> float:
    """µs of CPU per token, numerically the same as ms per 1,000 tokens."""
    return ns / 1000 / tokens if tokens else float("nan")


def cpu_figures(cpu: Cpu, tokens: int, *, per_1k: bool = False) -> dict[str, Any]:
    """A server's CPU over the load: in all, where it was read from, and per token it relayed (main thread
    and the other threads apart), in µs per token or, with `per_1k`, in ms per 1,000 tokens."""
    if per_1k:
        names = ("cpu_ms_per_1k_tokens", "main_thread_ms_per_1k_tokens", "other_threads_ms_per_1k_tokens")
    else:
        names = ("cpu_us_per_token", "main_thread_cpu_us_per_token", "other_threads_cpu_us_per_token")
    return {
        "server_cpu_s": cpu.ns / 1e9,
        "cpu_source": cpu.source,
        **{
            name: per_token(ns, tokens)
            for name, ns in zip(names, (cpu.ns, cpu.main_ns, cpu.other_ns), strict=True)
        },
    }


@dataclasses.dataclass
class Measured:
    """CPU over the load phase of each server (by instance label), of nginx, of the stand-in, and of the
    Postgres backends of the bench database (ours only)."""

    servers: dict[str, Cpu]
    front: Cpu | None
    standin: Cpu
    postgres_ns: int | None
    postgres_backends: int

    def beside(self, tokens: int, *, per_1k: bool = False) -> dict[str, Any]:
        """CPU not charged to the servers, per token delivered: nginx's, the stand-in's, Postgres'."""
        unit = "ms_per_1k_tokens" if per_1k else "us_per_token"
        out: dict[str, Any] = {}
        for name, cpu in (("nginx", self.front), ("standin", self.standin)):
            if cpu is not None:
                out[f"{name}_cpu_s"] = cpu.ns / 1e9
                out[f"{name}_cpu_{unit}"] = per_token(cpu.ns, tokens)
        if self.postgres_ns is not None:
            # Backends that ended during the load are missed; daphne keeps its pooled connections open.
            out[f"postgres_cpu_{unit}"] = per_token(self.postgres_ns, tokens)
            out["postgres_backends"] = self.postgres_backends
        return out


def warm_up(server: HttpServer, label: str, tag: str) -> None:
    """One client, one 20-token reply (imports, pools, the upstream client); not measured."""
    for attempt in range(3):
        warm, _ = asyncio.run(run_load(server, Load(1, 1, 20, 0, turn_timeout=30), f"{tag}-w{attempt}"))
        if not warm.error_count and warm.tokens == 20:
            return
        log(f"[{label}] warm-up failed: {dict(warm.errors)}")
    assert server.proc is not None
    raise RuntimeError(f"warm-up failed 3 times: {dict(warm.errors)}\n{server.proc.tail()}")


def profiler_start(py_spy: str, pid: int, out: Path, log_path: Path) -> Process:
    argv = [py_spy, "record", "--pid", str(pid), "-o", str(out), "-f", "raw", "-r", "200", "--nonblocking"]
    return Process(argv, log_path, name="py-spy")


def profiler_stop(profiler: Process) -> None:
    """SIGINT: py-spy writes its profile and exits (killed if it has not within 30 s)."""
    profiler.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        profiler.wait(30)
    profiler.stop(wait=0)


class Configuration:
    """One configuration of one scenario (one row, or one group of rows, of its table), run by run().

    A subclass says which servers run (`kinds`, by instance label; "" for a server alone), what the load is
    (load), and what the row holds (summarize); prepare() runs between the warm-ups and the load."""

    daphne_flags: tuple[str, ...] = ()

    def __init__(self, bench: Bench, scenario: str, config: str, params: dict[str, Any]) -> None:
        self.bench, self.scenario, self.config, self.params = bench, scenario, config, params
        self.stem = f"{scenario}-{config}"
        self.tag = f"b{bench.run_id}-{self.stem}"
        self.load_spec = Load(
            params["clients"], params["turns"], params["tokens"], params["delay_ms"], bench.args.turn_timeout
        )
        self.kinds: dict[str, str] = {}
        self.server_env: dict[str, str] = {}  # variables of ours' environment to override
        self.ours = True  # servers of ours: database counters and Postgres CPU
        self.flush_redis = True
        self.result: dict[str, Any] = {"server": config}
        self.servers: dict[str, HttpServer] = {}
        self.front: Nginx | None = None
        self.standin: Process

    # What a family says

    @property
    def database(self) -> str:
        """Whose scratch database the servers use: `before`'s own, or ours."""
        return "before" if "before" in self.kinds.values() else "ours"

    def describe(self) -> str:
        load = self.load_spec
        return (
            f"{load.clients} clients x {load.turns} turns x {load.tokens} tokens, delay {load.delay_ms:g} ms"
        )

    def front_start(self) -> None:
        """Start what stands in front of the servers, if anything."""

    def prepare(self) -> None:
        """After the warm-ups, before the load: more warm-up, another phase."""

    def load(self) -> Any:
        raise NotImplementedError

    def summarize(self, loaded: Any, measured: Measured) -> dict[str, dict[str, Any]]:
        """Fill the row; return, by instance label, where each server's exit and log problems go."""
        raise NotImplementedError

    def finish(self) -> None:
        """After the servers stopped."""

    # The runner

    def path(self, name: str) -> Path:
        return self.bench.run_dir / f"{self.stem}-{name}"

    def named(self, label: str) -> str:
        return f"{self.stem}-{label}" if label else self.stem

    def running(self) -> list[HttpServer]:
        return [*self.servers.values(), *([self.front] if self.front else [])]

    def run(self) -> dict[str, Any]:
        """Run the configuration from a fresh stand-in to every process stopped; return its row."""
        self.result["loadavg_before"] = os.getloadavg()
        if self.flush_redis:
            redis_flush()
        load = self.load_spec
        self.standin, standin_url = standin_start(
            "--tokens", str(load.tokens), "--delay-ms", f"{load.delay_ms:g}", log=self.path("standin.log")
        )
        profilers: list[Process] = []
        try:
            db_before = db_counters_settled(self.database) if self.ours else None
            self.start(standin_url)
            self.prepare()
            profilers = self.profilers_start()
            log(f"[{self.scenario}] {self.config}: {self.describe()}")
            loaded, measured = self.measured()
            for profiler in profilers:
                profiler_stop(profiler)
            self.stop(self.summarize(loaded, measured))
            self.finish()
            if db_before is not None:
                self.result["db"] = db_per_reply(db_before, db_counters_settled(self.database))
        finally:
            for process in [*profilers, *self.running()]:
                process.stop()
            self.standin.stop()
        return self.result

    def start(self, standin_url: str) -> None:
        """Start the servers (and what stands in front of them), then warm each up."""
        for label, kind in self.kinds.items():
            self.servers[label] = server_start(
                kind,
                standin_url,
                self.bench.run_dir,
                self.named(label),
                flags=self.daphne_flags,
                before=self.bench.args.before,
                env=self.server_env,
            )
        self.front_start()
        commands = [command_line(server, self.kinds[label]) for label, server in self.servers.items()]
        self.result["command"] = commands + ([command_line(self.front)] if self.front else [])
        self.result["standin_url"] = standin_url
        where = ", ".join(f"{label} pid {s.pid} on port {s.port}" for label, s in self.labelled())
        log(f"[{self.scenario}] {self.config}: {where}; warming up")
        for label, server in self.servers.items():
            warm_up(server, f"{self.scenario}] [{self.config} {label}".rstrip(), self.tag + label)

    def profilers_start(self) -> list[Process]:
        """With --py-spy, a profiler on each server of a kind in --py-spy-servers."""
        args, profilers = self.bench.args, []
        for label, server in self.servers.items():
            if args.py_spy and self.kinds[label] in args.py_spy_servers:
                out = self.bench.run_dir / f"{self.named(label)}-profile.txt"
                py_spy_log = self.bench.run_dir / f"{self.named(label)}-py-spy.log"
                profilers.append(profiler_start(args.py_spy, server.pid, out, py_spy_log))
                self.result.setdefault("profile", []).append(str(out))
        if profilers:
            time.sleep(1.0)
        return profilers

    def stop(self, targets: dict[str, dict[str, Any]]) -> None:
        """Stop each server; in its target, its exit if it had died, and the problems in its log."""
        for label, target in targets.items():
            server = self.servers[label]
            assert server.proc is not None
            if server.proc.poll() is None:
                server.stop()
            else:
                target["server_exit"] = server.proc.returncode
                target["server_log_tail"] = server.proc.tail()
            target["log_problems"] = log_problems(server.log)

    def labelled(self) -> list[tuple[str, HttpServer]]:
        """Each running server with its label: its instance label, "nginx", or its kind when alone."""
        out = [(label or self.kinds[label], server) for label, server in self.servers.items()]
        return out + ([("nginx", self.front)] if self.front else [])

    def measured(self) -> tuple[Any, Measured]:
        """Run the load between two CPU samples of every process."""
        pids = {label: server.pid for label, server in self.servers.items()}
        front = self.front.pid if self.front else None
        postgres0 = pg_backends_cpu(self.database) if self.ours else None
        before = {label: cpu_sample(pid) for label, pid in pids.items()}
        front0 = cpu_sample(front) if front else None
        standin0 = cpu_sample(self.standin.pid)
        loaded = self.load()
        after = {label: cpu_sample(pid) for label, pid in pids.items()}
        front1 = cpu_sample(front) if front else None
        standin1 = cpu_sample(self.standin.pid)
        postgres1 = pg_backends_cpu(self.database) if self.ours else None
        measured = Measured(
            servers={label: Cpu.between(before[label], after[label]) for label in pids},
            front=Cpu.between(front0, front1) if front0 and front1 else None,
            standin=Cpu.between(standin0, standin1),
            postgres_ns=None,
            postgres_backends=0,
        )
        if postgres0 is not None and postgres1 is not None:
            measured.postgres_ns = sum(ns - postgres0.get(pid, 0) for pid, ns in postgres1.items())
            measured.postgres_backends = len(postgres1)
        return loaded, measured


class Streams(Configuration):
    """One server (ours, before, seed or bare): N clients x T turns, each client on its own conversation."""

    def __init__(self, bench: Bench, scenario: str, config: str, params: dict[str, Any]) -> None:
        super().__init__(bench, scenario, config, params)
        self.kinds = {"": config}
        self.ours = config in OURS
        # Ours alone in `pair` runs on the Redis the pair just used.
        self.flush_redis = self.ours and scenario == "pair"

    def load(self) -> tuple[LoadStats, float]:
        return asyncio.run(run_load(self.servers[""], self.load_spec, self.tag))

    def summarize(self, loaded: tuple[LoadStats, float], measured: Measured) -> dict[str, dict[str, Any]]:
        stats, wall = loaded
        self.result.update(
            **cpu_figures(measured.servers[""], stats.tokens),
            **measured.beside(stats.tokens),
            **latency_summary(stats),
            expected_tokens=self.load_spec.expected_tokens,
            wall_s=wall,
        )
        return {"": self.result}


class PageOrApi(Streams):
    """Ours alone, its clients on the page's socket (`page-N`) or on the OpenAI-compatible API (`api-N`,
    with a key made for the run): the cost of an API turn beside a page turn."""

    def __init__(self, bench: Bench, scenario: str, config: str, params: dict[str, Any]) -> None:
        super().__init__(bench, scenario, config, params)
        self.kinds, self.ours = {"": "ours"}, True
        self.server_env = {"CHAT_API_KEY_RATE_LIMIT": "0"}  # one key for every client
        self.api = config.startswith("api")
        self.key = ""

    def prepare(self) -> None:
        if self.api:
            self.key = api_key_made(self.result["standin_url"])
            warm, _ = asyncio.run(
                run_api_load(self.servers[""], Load(1, 1, 20, 0, turn_timeout=30), self.tag + "w", self.key)
            )
            if warm.error_count:
                raise RuntimeError(f"API warm-up failed: {dict(warm.errors)}")

    def load(self) -> tuple[LoadStats, float]:
        if self.api:
            return asyncio.run(run_api_load(self.servers[""], self.load_spec, self.tag, self.key))
        return super().load()


class Pair(Configuration):
    """Two instances of ours (A, B) on one stand-in, one database, one Redis; each conversation has its
    sender on one instance and its follower on the other. CPU per instance, latency per socket role."""

    def __init__(self, bench: Bench, scenario: str, config: str, params: dict[str, Any]) -> None:
        super().__init__(bench, scenario, config, params)
        self.kinds = dict.fromkeys(INSTANCES, "before" if config == "pair-before" else "ours")

    def describe(self) -> str:
        load = self.load_spec
        return (
            f"{load.clients} conversations (sender + follower) x {load.turns} turns x {load.tokens} tokens,"
            f" delay {load.delay_ms:g} ms"
        )

    def pair(self) -> tuple[HttpServer, HttpServer]:
        a, b = self.servers.values()
        return a, b

    def prepare(self) -> None:
        # Both directions of the cross-instance path once (group events, reply-log reads), not measured.
        # A failure here is a finding, not a reason to stop: it is recorded and the load runs anyway.
        warm_errors: Counter = Counter()
        for attempt in range(2):
            warm, _ = asyncio.run(
                run_pair_load(self.pair(), Load(2, 1, 20, 0, turn_timeout=10), f"{self.tag}-w{attempt}")
            )
            merged = LoadStats.merged(list(warm.values()))
            if not merged.error_count and merged.tokens == 80:
                break
            warm_errors += merged.errors
            log(f"[{self.scenario}] pair: cross-instance warm-up failed: {dict(merged.errors)}")
        self.result["warmup_errors"] = dict(warm_errors)
        # channels_redis: a receive() cancelled inside BZPOPMIN (the warm-up's sockets just closed) can
        # leave that BZPOPMIN pending on the Redis server for up to its 5 s timeout, and whatever it pops
        # then is lost (django/channels_redis#366). Let those expire so the load does not start on them.
        time.sleep(STRAY_RECEIVE_SETTLE_S)

    def load(self) -> tuple[dict[tuple[str, int], LoadStats], float]:
        return asyncio.run(run_pair_load(self.pair(), self.load_spec, self.tag))

    def summarize(
        self, loaded: tuple[dict[tuple[str, int], LoadStats], float], measured: Measured
    ) -> dict[str, dict[str, Any]]:
        stats, wall = loaded
        instances: dict[str, Any] = {}
        total_ns = 0
        for i, (label, server) in enumerate(self.servers.items()):
            cpu = measured.servers[label]
            relayed = stats["local", i].tokens + stats["cross", i].tokens
            total_ns += cpu.ns
            instances[label] = {
                "pid": server.pid,
                "port": server.port,
                **cpu_figures(cpu, relayed),
                "tokens": relayed,
                "local": latency_summary(stats["local", i]),
                "cross": latency_summary(stats["cross", i]),
                "errors": stats["local", i].error_count + stats["cross", i].error_count,
            }
        local = LoadStats.merged([stats["local", 0], stats["local", 1]])
        cross = LoadStats.merged([stats["cross", 0], stats["cross", 1]])
        every = latency_summary(LoadStats.merged([local, cross]))
        self.result.update(
            instances=instances,
            cpu_us_per_token=per_token(total_ns, every["tokens"]),
            cpu_us_per_upstream_token=per_token(total_ns, local.tokens),
            server_cpu_s=total_ns / 1e9,
            **measured.beside(every["tokens"]),
            local=latency_summary(local),
            cross=latency_summary(cross),
            **{key: every[key] for key in ("p50_ms", "p99_ms", "max_ms", "tokens", "turns_ok", "errors")},
            expected_tokens=2 * self.load_spec.expected_tokens,
            error_kinds=every["error_kinds"],
            wall_s=wall,
        )
        return instances


class BehindNginx(Configuration):
    """nginx (deploy/nginx.conf) in front of two instances of ours (`two`) or one (`one`), all on one
    stand-in, the bench database and the bench's Redis. Phase 1, idle: open the idle sockets, hold them,
    RSS per instance before/after. Phase 2, streams: N clients x T turns x K stamped tokens, each on its own
    conversation; CPU per instance per token it relayed, nginx CPU apart."""

    daphne_flags = SERVE_FLAGS

    def __init__(self, bench: Bench, scenario: str, config: str, params: dict[str, Any]) -> None:
        super().__init__(bench, scenario, config, params)
        self.kinds = dict.fromkeys(INSTANCES[: 2 if config == "two" else 1], "ours")
        self.result.update(instances_count=len(self.kinds), nofile=raise_nofile())
        self.stream_tag = f"{self.tag}-s"

    def describe(self) -> str:
        return f"{super().describe()}, through nginx"

    def front_start(self) -> None:
        self.front = nginx_start(self.path("nginx"), [server.port for server in self.servers.values()])
        self.result["nginx_conf"] = str((self.front.prefix / "chat.conf").relative_to(REPO))

    def logs(self) -> list[Path]:
        return [server.log for server in self.servers.values()]

    def prepare(self) -> None:
        assert self.front is not None
        warm, _ = asyncio.run(run_load(self.front, Load(4, 1, 20, 0, turn_timeout=30), f"{self.tag}-wn"))
        if warm.error_count or warm.tokens != 80:
            raise RuntimeError(f"warm-up through nginx failed: {dict(warm.errors)}")
        self.idle()
        time.sleep(1.0)

    def idle(self) -> None:
        """Idle sockets, on processes that have only been warmed up (fresh memory, see bench/README.md)."""
        assert self.front is not None
        front, servers, labels = self.front, list(self.servers.values()), list(self.servers)
        idle_count, hold_s = self.params["idle_sockets"], self.params["idle_s"]
        idle_tag = f"{self.tag}-idle"
        time.sleep(1.0)
        rss: dict[str, list[int]] = {"before": [rss_kib(s.pid) for s in servers]}
        nginx_rss = {"before": rss_kib(front.pid)}

        def probe(point: str) -> None:
            rss[point] = [rss_kib(s.pid) for s in servers]
            nginx_rss[point] = rss_kib(front.pid)

        log(f"[{self.scenario}] {self.config}: {idle_count} idle sockets through nginx, held {hold_s:g} s")
        idle_stats, idle_info = asyncio.run(
            run_idle_sockets(front, count=idle_count, hold_s=hold_s, tag=idle_tag, probe=probe)
        )
        idle_info["all_disconnected"] = wait_for_disconnects(self.logs(), idle_tag + "-")
        time.sleep(1.0)
        probe("after_close")
        instances = {}
        for i, label in enumerate(labels):
            ev = daphne_ws_events(self.logs()[i], idle_tag + "-")
            held = len(ev.get("WSCONNECT", Counter()))
            grown = rss["held"][i] - rss["before"][i]
            instances[label] = {
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
        self.result["idle"] = {
            "sockets": idle_count,
            "hold_s": hold_s,
            **idle_info,
            "errors": idle_stats.error_count,
            "error_kinds": dict(idle_stats.errors),
            "instances": instances,
            "nginx_rss_kib": nginx_rss,
            "nginx_kib_per_socket": (nginx_rss["held"] - nginx_rss["before"]) / opened if opened else None,
            "nginx_access": nginx_access_summary(front.access_log, idle_tag + "-"),
        }

    def load(self) -> tuple[dict[str, LoadStats], float]:
        assert self.front is not None
        return asyncio.run(run_stream_clients(self.front, self.load_spec, self.stream_tag))

    def summarize(
        self, loaded: tuple[dict[str, LoadStats], float], measured: Measured
    ) -> dict[str, dict[str, Any]]:
        assert self.front is not None
        per_sid, wall = loaded
        prefix = self.stream_tag + "-"
        wait_for_disconnects(self.logs(), prefix, timeout=10)
        # Which instance accepted each socket: its WSCONNECT line in that instance's access log.
        where: dict[str, str] = {}
        doubly: list[str] = []
        for label, path in zip(self.servers, self.logs(), strict=True):
            for sid in daphne_ws_events(path, prefix).get("WSCONNECT", Counter()):
                if sid in per_sid:
                    if sid in where:
                        doubly.append(sid)
                    where[sid] = label
        groups: dict[str, list[LoadStats]] = {label: [] for label in self.servers}
        unattributed: list[LoadStats] = []
        for sid, st in per_sid.items():
            (groups[where[sid]] if sid in where else unattributed).append(st)

        instances: dict[str, Any] = {}
        total_ns = 0
        for label, server in self.servers.items():
            cpu = measured.servers[label]
            merged = LoadStats.merged(groups[label])
            total_ns += cpu.ns
            instances[label] = {
                "pid": server.pid,
                "port": server.port,
                "sockets": len(groups[label]),
                **cpu_figures(cpu, merged.tokens, per_1k=True),
                **latency_summary(merged),
            }
        every = LoadStats.merged(list(per_sid.values()))
        self.result["streams"] = {
            "instances": instances,
            "cpu_ms_per_1k_tokens": per_token(total_ns, every.tokens),
            "server_cpu_s": total_ns / 1e9,
            **measured.beside(every.tokens, per_1k=True),
            **latency_summary(every),
            "expected_tokens": self.load_spec.expected_tokens,
            "unattributed_sockets": len(unattributed),
            "unattributed_tokens": LoadStats.merged(unattributed).tokens,
            "sockets_in_two_logs": doubly[:10],
            "wall_s": wall,
            "nginx_access": nginx_access_summary(self.front.access_log, prefix),
        }
        self.result["errors"] = every.error_count + self.result["idle"]["errors"]
        return instances

    def finish(self) -> None:
        assert self.front is not None
        self.front.stop()
        self.result["nginx_errors"] = nginx_error_summary(self.front.log)


class Scale(Configuration):
    """One instance of ours (Daphne directly, with the production flags: pings every 20 s) holding `config`
    sockets on the chat page's path, SCALE_SOCKETS_PER_BROWSER per browser session, each on a conversation
    of its own. Phases: a window with no socket open (the instance's own idle CPU), the sockets opened,
    held idle (memory and CPU per socket), then one in 1/stream_share streams a reply while the others
    stay open; the Postgres connections of the bench database polled throughout."""

    daphne_flags = SERVE_FLAGS

    def __init__(self, bench: Bench, scenario: str, config: str, params: dict[str, Any]) -> None:
        super().__init__(bench, scenario, config, params)
        self.kinds = {"": "ours"}
        self.sockets = int(config)
        streams = max(1, round(self.sockets * params["stream_share"]))
        self.every = max(1, self.sockets // streams)
        self.load_spec = dataclasses.replace(self.load_spec, clients=streams)
        # Sockets counted per owner and renewed at each heartbeat, as in production (the bench's default
        # turns the count off); each browser session opens no more than the maximum.
        self.server_env = {"CHAT_MAX_SOCKETS_PER_OWNER": str(SCALE_SOCKETS_PER_BROWSER)}
        self.result.update(
            sockets=self.sockets, streams=streams, nofile=raise_nofile(self.sockets + NOFILE_MARGIN)
        )
        self.loop = asyncio.new_event_loop()
        self.crowd: SocketCrowd | None = None
        self.pg = PgBackendsWatch(self.database)

    def describe(self) -> str:
        load = self.load_spec
        return (
            f"{self.sockets} sockets, {load.clients} of them streaming {load.turns} x {load.tokens} tokens,"
            f" delay {load.delay_ms:g} ms"
        )

    def run(self) -> dict[str, Any]:
        try:
            return super().run()
        finally:
            self.pg.__exit__()
            if self.crowd is not None:
                with contextlib.suppress(Exception):
                    self.loop.run_until_complete(self.crowd.close())
            self.loop.close()

    def hold(self, seconds: float) -> None:
        """Let the clients' loop run (the open sockets read their pings and answer them)."""
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def prepare(self) -> None:
        server = self.servers[""]
        pid, baseline_s, idle_s = server.pid, self.params["baseline_s"], self.params["idle_s"]
        self.pg.__enter__()
        time.sleep(1.0)
        # The instance alone: its heartbeat and Daphne's timers, with no socket open.
        rss0 = rss_kib(pid)
        cpu0, t0 = cpu_sample(pid), time.monotonic()
        time.sleep(baseline_s)
        cpu1, t1 = cpu_sample(pid), time.monotonic()
        self.pg.mark("open")
        log(f"[{self.scenario}] {self.config}: opening {self.sockets} sockets")
        self.crowd = SocketCrowd(
            server, self.tag, per_browser=SCALE_SOCKETS_PER_BROWSER, concurrency=IDLE_CONNECT_CONCURRENCY
        )
        opened = self.loop.run_until_complete(self.crowd.open(self.sockets))
        cpu2 = cpu_sample(pid)
        log(
            f"[{self.scenario}] {self.config}: {opened['opened']} open in {opened['open_s']:.1f} s;"
            f" holding them idle {idle_s:g} s"
        )
        self.pg.mark("idle")
        self.hold(2.0)
        rss_open = rss_kib(pid)
        cpu3, t3 = cpu_sample(pid), time.monotonic()
        self.hold(idle_s)
        cpu4, t4 = cpu_sample(pid), time.monotonic()
        rss_held = rss_kib(pid)
        self.pg.mark("streams")
        count = opened["opened"]
        base = Cpu.between(cpu0, cpu1)
        idle = Cpu.between(cpu3, cpu4)
        base_rate = base.ns / (t1 - t0)  # ns of CPU per second
        idle_rate = idle.ns / (t4 - t3)

        def per_socket_minute(ns_per_s: float) -> float:
            return ns_per_s * 60 / count / 1e6 if count else float("nan")  # ms per socket per minute

        self.result["idle"] = {
            **opened,
            "baseline_s": t1 - t0,
            "idle_s": t4 - t3,
            "connect_cpu_us_per_socket": Cpu.between(cpu1, cpu2).ns / 1000 / count if count else None,
            "rss_before_kib": rss0,
            "rss_open_kib": rss_open,
            "rss_held_kib": rss_held,
            "kib_per_socket": (rss_held - rss0) / count if count else float("nan"),
            "baseline_cpu_ms_per_min": base_rate * 60 / 1e6,
            "idle_cpu_ms_per_min": idle_rate * 60 / 1e6,
            "idle_main_thread_ms_per_min": idle.main_ns / (t4 - t3) * 60 / 1e6,
            "idle_cpu_ms_per_socket_min": per_socket_minute(idle_rate),
            "idle_cpu_ms_per_socket_min_net": per_socket_minute(idle_rate - base_rate),
        }

    def load(self) -> tuple[dict[str, LoadStats], float]:
        assert self.crowd is not None
        per_sid, idle, wall = self.loop.run_until_complete(self.crowd.stream(self.every, self.load_spec))
        self.crowd.idle_problems(idle)
        return per_sid, wall

    def summarize(
        self, loaded: tuple[dict[str, LoadStats], float], measured: Measured
    ) -> dict[str, dict[str, Any]]:
        assert self.crowd is not None
        per_sid, wall = loaded
        pid = self.servers[""].pid
        streams = LoadStats.merged(list(per_sid.values()))
        self.result.update(
            **cpu_figures(measured.servers[""], streams.tokens, per_1k=True),
            **measured.beside(streams.tokens, per_1k=True),
            **latency_summary(streams),
            expected_tokens=self.load_spec.expected_tokens,
            wall_s=wall,
        )
        self.pg.mark("close")
        self.result["idle"]["close_s"] = self.loop.run_until_complete(self.crowd.close())
        self.hold(1.0)
        self.result["idle"]["rss_after_close_kib"] = rss_kib(pid)
        self.pg.__exit__()
        self.result["idle"]["errors"] = self.crowd.stats.error_count
        self.result["idle"]["error_kinds"] = dict(self.crowd.stats.errors)
        self.result["idle"]["error_samples"] = self.crowd.stats.samples
        self.result["errors"] += self.crowd.stats.error_count
        self.result["postgres_connections"] = {
            "peak": self.pg.peak,
            "by_phase": self.pg.peaks,
            "bound": int((self.servers[""].env or {}).get("CHAT_DB_POOL_MAX", "20")),
            **({"failure": self.pg.failure} if self.pg.failure else {}),
        }
        return {"": self.result}
