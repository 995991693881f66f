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

The `scale` scenario (opt-in) runs one instance of ours holding 1,000, 5,000, then 10,000 sockets, 10% of
them streaming at once: memory and idle CPU per socket, relay and first-token latency, Postgres connections.

The `api` scenario (opt-in) runs the same turns through the page's socket and through the OpenAI-compatible
API (`POST /v1/chat/completions`, streamed), page, api, api, page: what an API turn costs beside a page turn.

usage: .venv/bin/python -m bench [--scenario burst|paced|pair|nginx|scale|api|all|all-with-pair]
                                 [--servers ours,seed,bare] [--quick] [--before DIR]
                                 [--clients N --turns T --tokens K --delay-ms D]
                                 [--idle-sockets N --idle-s S] [--scale-sockets N,N,...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from tests.processes import processes_stop

from . import log
from .report import render
from .scenarios import (
    ALL_SERVERS,
    DEFAULT_SCENARIOS,
    NGINX_IDLE,
    QUICK,
    SCALE,
    SCENARIOS,
    Bench,
    configuration,
    scenario_configs,
    scenario_params,
)
from .servers import (
    BASELINES,
    BENCH,
    BENCH_DB,
    OURS,
    REPO,
    bench_db_create,
    bench_db_drop,
    bench_db_name,
    ensure_seed_venv,
    migrate_bench_db,
    preflight_ours,
    raise_nofile,
)

RESULTS = BENCH / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario",
        default="all",
        help="burst, paced, pair, nginx, scale, api (comma-separated), all (= burst,paced; the default)"
        " or all-with-pair",
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
        help=f"nginx, scale: seconds to hold the idle sockets (default {NGINX_IDLE['idle_s']:g},"
        f" scale {SCALE['idle_s']:g})",
    )
    parser.add_argument(
        "--scale-sockets",
        type=lambda text: [int(n) for n in text.split(",") if n.strip()],
        help="scale: comma-separated socket counts, one instance each"
        f" (default {','.join(map(str, SCALE['sockets']))}; --quick: 200)",
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
        args.before = args.before.resolve()
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # What the scenarios run: ours (pair, nginx and scale configurations are ours too), seed, bare.
    needed = {
        "ours" if s in ("nginx", "scale", "api") or c in ("pair", *OURS) else c
        for s in args.scenarios
        for c in scenario_configs(s, args)
    }
    databases = [kind for kind in OURS if kind == "ours" or kind in args.server_list]
    if not (BASELINES / "seed_server.py").exists() and {"seed", "bare"} & needed:
        log(f"baselines not found in {BASELINES} (set BENCH_BASELINES_DIR)")
        return 2
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = secrets.token_hex(3)
    run_dir = RESULTS / "logs" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    bench = Bench(args, run_dir, run_id)
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
            for kind in databases:
                log(f"creating and migrating the scratch database {bench_db_name(kind)}")
                bench_db_create(kind)
                created_db = True
                migrate_bench_db(kind, args.before)
        for scenario in args.scenarios:
            params = scenario_params(scenario, args)
            rows = []
            for name in scenario_configs(scenario, args):
                try:
                    rows.append(configuration(bench, scenario, name, params).run())
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    status = 1
                    log(f"[{scenario}] {name} FAILED: {exc}")
                    rows.append({"server": name, "failure": str(exc)[:2000]})
            print(render(scenario, params, rows) + "\n", flush=True)
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
        processes_stop()
        if created_db and not args.keep_db:
            for kind in databases:
                bench_db_drop(kind)
        if report["scenarios"]:
            out = RESULTS / f"{stamp}.json"
            out.write_text(json.dumps(report, indent=2, default=str) + "\n")
            print(f"results: {out.relative_to(REPO)}   logs: {run_dir.relative_to(REPO)}/")
    return status


if __name__ == "__main__":
    sys.exit(main())
