"""The report: one table per scenario, with the lines under it (CPU split, stand-in and Postgres CPU, time
to first token, database writes, errors, and ours against the seed's budget and against `--before`)."""

from __future__ import annotations

from typing import Any

from .load import IDLE_CONNECT_CONCURRENCY
from .scenarios import SCENARIOS

# The design's budget for ours: CPU per token relative to the seed, per scenario; p99 at least 10x lower.
# For `pair` it applies to each instance's CPU per token it relayed (100 streams, 5 ms between tokens).
CPU_BUDGET = {"burst": 0.25, "paced": 0.5, "pair": 0.5}
P99_FACTOR = 10


def render(scenario: str, params: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The scenario's table (rows of `pair` and `nginx` have their own shape)."""
    tables = {"pair": pair_table, "nginx": nginx_table, "scale": scale_table, "api": api_table}
    return tables.get(scenario, table)(scenario, params, rows)


def fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return format(value, spec)


def titles(cols: tuple[str, ...], widths: tuple[int, ...], left: int = 1) -> str:
    """A table's column titles: the first `left` aligned left, the others right."""
    pairs = enumerate(zip(cols, widths, strict=True))
    return "  ".join(c.rjust(w) if i >= left else c.ljust(w) for i, (c, w) in pairs)


def arrived(label: str, r: dict[str, Any]) -> list[str]:
    if r["tokens"] == r["expected_tokens"]:
        return []
    return [f"  {label}: {r['tokens']} of {r['expected_tokens']} tokens arrived"]


def db_note(label: str, db: dict[str, Any], *, all_tables: bool = True) -> str:
    writes = f" {db['message_writes_per_reply']:.2f} message-row writes,"
    if all_tables:
        writes += f" {db['all_writes_per_reply']:.2f} row writes in all tables,"
    transactions = " transactions (reads included)" if all_tables else " transactions"
    return (
        f"  {label}: DB per reply ({db['replies']} replies incl. warm-up):{writes}"
        f" {db['commits_per_reply']:.2f}{transactions}"
    )


def profile_notes(label: str, r: dict[str, Any]) -> list[str]:
    if "profile" not in r:
        return []
    return [f"  {label}: profiled with py-spy (CPU figures include its overhead): {', '.join(r['profile'])}"]


def instance_notes(label: str, instances: dict[str, Any], during: str) -> list[str]:
    """What each instance left in its log, and its exit if it died during the load."""
    notes = []
    for inst, d in instances.items():
        if d.get("log_problems"):
            notes.append(f"  {label} {inst}: server log warnings/errors {d['log_problems']}")
        if "server_exit" in d:
            notes.append(f"  {label} {inst}: server exited during the {during} with {d['server_exit']}")
    return notes


def table(scenario: str, params: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    seed = next((r for r in rows if r["server"] == "seed" and "cpu_us_per_token" in r), None)
    ours = next((r for r in rows if r["server"] == "ours"), None)
    head = (
        f"== {scenario}: {params['clients']} clients x {params['turns']} turns x {params['tokens']} tokens,"
        f" delay {params['delay_ms']:g} ms =="
    )
    cols = ("server", "µs CPU/token", "× seed", "p50 ms", "p99 ms", "max ms", "tokens", "errors", "wall s")
    widths = (6, 12, 7, 9, 9, 9, 8, 6, 7)
    lines = [head, titles(cols, widths)]
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
        notes += arrived(r["server"], r)
        if r["error_kinds"]:
            notes.append(f"  {r['server']}: errors {r['error_kinds']}")
        if "db" in r:
            notes.append(db_note(r["server"], r["db"]))
        if r.get("log_problems") and r["server"] == "ours":
            notes.append(f"  {r['server']}: server log warnings/errors {r['log_problems']}")
        notes += profile_notes(r["server"], r)
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


def api_table(scenario: str, params: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The `api` scenario: the streams table, then an API turn beside a page turn (each the mean of its
    two runs)."""
    out = table(scenario, params, rows)
    runs = {
        kind: [r for r in rows if r["server"].startswith(kind) and "cpu_us_per_token" in r]
        for kind in ("page", "api")
    }
    if not all(runs.values()):
        return out

    def mean(kind: str, key: str) -> float:
        return sum(r[key] for r in runs[kind]) / len(runs[kind])

    figures = [
        ("CPU/token", "cpu_us_per_token", "µs"),
        ("first token p50", "first_token_p50_ms", "ms"),
        ("first token p99", "first_token_p99_ms", "ms"),
        ("start p50", "start_p50_ms", "ms"),
        ("relay p50", "p50_ms", "ms"),
    ]
    cells = []
    for name, key, unit in figures:
        api, page = mean("api", key), mean("page", key)
        cells.append(f"{name} {api:.1f} vs {page:.1f} {unit} ({api / page:.2f}×)")
    return out + "\n  api vs page (mean of both runs): " + "; ".join(cells)


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
    lines = [head, titles(cols, widths)]

    def ratio(value: float) -> float | None:
        return value / seed["cpu_us_per_token"] if seed else None

    def row(label: str, d: dict[str, Any], local: dict | None, cross: dict | None, wall: Any) -> None:
        cpu = d["cpu_us_per_token"]
        cells = [label.ljust(8), fmt(cpu, ".1f").rjust(12), fmt(ratio(cpu), ".3f").rjust(7)]
        for part in (local, cross):
            for key, width in (("p50_ms", 9), ("p99_ms", 7), ("max_ms", 7)):
                cells.append(fmt(part[key] if part else None, ".1f").rjust(width))
        cells += [f"{d['tokens']}".rjust(7), f"{d['errors']}".rjust(6), fmt(wall, ".1f").rjust(6)]
        lines.append("  ".join(cells))

    notes = []
    for r in rows:
        name = r["server"]
        label = {"pair": "pair", "pair-before": "before", "ours": "single"}.get(name, name)
        if "cpu_us_per_token" not in r:
            lines.append(f"{label:<8}  FAILED: {r.get('failure', '?')}")
            continue
        r["ratio_to_seed"] = ratio(r["cpu_us_per_token"])
        if name in ("pair", "pair-before"):
            for inst, d in r["instances"].items():
                d["ratio_to_seed"] = ratio(d["cpu_us_per_token"])
                row(f"{label} {inst}", d, d["local"], d["cross"], None)
            row(f"{label} A+B", r, r["local"], r["cross"], r["wall_s"])
            notes += pair_notes(r, single, label)
        else:
            row(label, r, r, None, r["wall_s"])
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
        notes += arrived(label, r)
        if "db" in r:
            notes.append(db_note(label, r["db"]))
        notes += profile_notes(label, r)
    if pair and seed:
        notes.append(pair_budget_note(params, pair, seed, single))
    return "\n".join(lines + notes)


def pair_notes(r: dict[str, Any], single: dict[str, Any] | None, label: str = "pair") -> list[str]:
    """The lines under the pair's rows: each instance's CPU split, what the follower costs, chunking, time
    to first token and `start` per socket role, the live cross path, errors, log problems."""
    notes: list[str] = []
    for inst, d in r["instances"].items():
        notes.append(
            f"  {label} {inst}: CPU {d['server_cpu_s']:.2f} s via {d['cpu_source']}"
            f" for {d['tokens']} tokens ({d['local']['tokens']} to its senders,"
            f" {d['cross']['tokens']} to its followers):"
            f" main thread {d['main_thread_cpu_us_per_token']:.1f}, other threads"
            f" {d['other_threads_cpu_us_per_token']:.1f} µs/token"
        )
    notes.append(
        f"  {label}: {r['cpu_us_per_upstream_token']:.1f} µs CPU (A+B) per token streamed from upstream"
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
        f"  {label}: tokens per chunk frame local {loc['tokens_per_chunk_frame']:.2f},"
        f" cross {cro['tokens_per_chunk_frame']:.2f}; time to first token (from the sender's send)"
        f" local p50 {loc['first_token_p50_ms']:.1f} / p99 {loc['first_token_p99_ms']:.1f} ms,"
        f" cross p50 {cro['first_token_p50_ms']:.1f} / p99 {cro['first_token_p99_ms']:.1f} ms;"
        f" `start` frame local p50 {loc['start_p50_ms']:.1f} / p99 {loc['start_p99_ms']:.1f} ms,"
        f" cross p50 {cro['start_p50_ms']:.1f} / p99 {cro['start_p99_ms']:.1f} ms"
    )
    notes.append(
        f"  {label}: cross latency of the {cro['live_tokens']} tokens sent after the follower's `start`"
        f" (the live path, no backlog): p50 {fmt(cro['live_p50_ms'], '.1f')},"
        f" p99 {fmt(cro['live_p99_ms'], '.1f')}, max {fmt(cro['live_max_ms'], '.1f')} ms"
    )
    for role in ("local", "cross"):
        part = r[role]
        if part["error_kinds"] or part["missing_tokens"] or part["duplicate_tokens"]:
            notes.append(
                f"  {label} {role}: errors {part['error_kinds']};"
                f" missing tokens {part['missing_tokens']}, duplicated {part['duplicate_tokens']},"
                f" offset breaks {part['offset_breaks']}"
            )
            for sample in part["error_samples"][:3]:
                notes.append(f"    e.g. {sample}")
    if r.get("warmup_errors"):
        notes.append(f"  {label}: cross-instance warm-up (not measured) failed: {r['warmup_errors']}")
    notes += instance_notes(label, r["instances"], "load")
    return notes


def pair_budget_note(
    params: dict[str, Any], pair: dict[str, Any], seed: dict[str, Any], single: dict[str, Any] | None
) -> str:
    """Ours against the seed's budget: CPU per relayed token per instance, p99 per socket role."""
    standard = all(params[key] == value for key, value in SCENARIOS["pair"].items())
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
    return (
        f"  ours vs budget{'' if standard else ' (non-standard parameters: indicative only)'}:"
        f" CPU per relayed token {', '.join(parts)} of the seed's (budget ≤ {budget}× per instance);"
        f" p99 below the seed's: {', '.join(p99)} (budget ≥ {P99_FACTOR}×)"
    )


def nginx_table(scenario: str, params: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The `nginx` scenario: streams (per instance and combined) and idle sockets, two instances vs one."""
    n, t, k = params["clients"], params["turns"], params["tokens"]
    idle_count, hold = params["idle_sockets"], params["idle_s"]
    streams = [
        f"== {scenario} streams: {n} clients x {t} turns x {k} tokens, delay {params['delay_ms']:g} ms,"
        " through nginx (deploy/nginx.conf, least_conn), each client on its own conversation ==",
        titles(
            ("config", "inst", "sockets", "ms CPU/1k tok", "p50 ms", "p99 ms", "max ms", "tokens", "errors")
            + ("wall s",),
            (6, 4, 7, 13, 8, 8, 8, 7, 6, 6),
            left=2,
        ),
    ]
    idle = [
        f"== {scenario} idle: {idle_count} idle sockets through nginx (handshake + `history`, then nothing),"
        f" held {hold:g} s; RSS of each Daphne ==",
        titles(
            (
                "config",
                "inst",
                "sockets",
                "RSS before MiB",
                "held MiB",
                "KiB/socket",
                "at open",
                "after close",
            )
            + ("errors", "open s"),
            (6, 4, 7, 14, 8, 10, 7, 11, 6, 6),
            left=2,
        ),
    ]
    stream_notes: list[str] = []
    idle_notes: list[str] = []
    names = {"two": "2 inst", "one": "1 inst"}
    for r in rows:
        label = names.get(r["server"], r["server"])
        if "streams" not in r:  # a configuration that failed has neither phase
            streams.append(f"{label:<6}  FAILED: {r.get('failure', '?')}")
            idle.append(f"{label:<6}  FAILED: {r.get('failure', '?')}")
            continue
        nginx_streams(label, r, streams, stream_notes)
        nginx_idle(label, r["idle"], idle, idle_notes)
    two = next((r for r in rows if r["server"] == "two" and "streams" in r), None)
    one = next((r for r in rows if r["server"] == "one" and "streams" in r), None)
    if two and one:
        a, b = two["streams"], one["streams"]
        stream_notes.append(
            f"  two vs one: CPU (all instances) {a['cpu_ms_per_1k_tokens']:.1f}"
            f" vs {b['cpu_ms_per_1k_tokens']:.1f} ms/1k tokens;"
            f" p50 {a['p50_ms']:.1f} vs {b['p50_ms']:.1f}, p99 {a['p99_ms']:.1f} vs"
            f" {b['p99_ms']:.1f} ms; nginx {a['nginx_cpu_ms_per_1k_tokens']:.1f} vs"
            f" {b['nginx_cpu_ms_per_1k_tokens']:.1f} ms/1k tokens"
        )
    return "\n".join([*streams, *stream_notes, "", *idle, *idle_notes])


def nginx_streams(label: str, r: dict[str, Any], lines: list[str], notes: list[str]) -> None:
    """A configuration's rows of the streams table: each instance, and all of them; and its lines."""
    s = r["streams"]

    def line(inst: str, d: dict[str, Any], sockets: Any, wall: Any) -> None:
        cells = [label.ljust(6), inst.ljust(4), f"{sockets}".rjust(7)]
        cells.append(fmt(d["cpu_ms_per_1k_tokens"], ".1f").rjust(13))
        cells += [fmt(d[key], ".1f").rjust(8) for key in ("p50_ms", "p99_ms", "max_ms")]
        cells += [f"{d['tokens']}".rjust(7), f"{d['errors']}".rjust(6), fmt(wall, ".1f").rjust(6)]
        lines.append("  ".join(cells))

    for inst, d in s["instances"].items():
        line(inst, d, d["sockets"], None)
    if len(s["instances"]) > 1:
        line("all", s, sum(d["sockets"] for d in s["instances"].values()), s["wall_s"])
    else:
        lines[-1] = lines[-1][:-6] + fmt(s["wall_s"], ".1f").rjust(6)
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
    notes += arrived(label, s)
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
    notes += instance_notes(label, s["instances"], "run")
    if r.get("nginx_errors"):
        notes.append(f"  {label}: nginx error log {r['nginx_errors']}")
    notes.append(db_note(label, r["db"], all_tables=False))
    notes += profile_notes(label, r)


def nginx_idle(label: str, idle: dict[str, Any], lines: list[str], notes: list[str]) -> None:
    """A configuration's rows of the idle-sockets table (one per instance), and its lines."""
    for inst, d in idle["instances"].items():
        cells = [label.ljust(6), inst.ljust(4), f"{d['sockets']}".rjust(7)]
        cells.append(fmt(d["rss_before_kib"] / 1024, ".1f").rjust(14))
        cells.append(fmt(d["rss_held_kib"] / 1024, ".1f").rjust(8))
        cells.append(fmt(d["kib_per_socket"], ".1f").rjust(10))
        cells.append(fmt(d["kib_per_socket_at_open"], ".1f").rjust(7))
        cells.append(fmt(d["rss_after_close_kib"] / 1024, ".1f").rjust(11))
        cells += [f"{idle['errors']}".rjust(6), fmt(idle["open_s"], ".1f").rjust(6)]
        lines.append("  ".join(cells))
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


def scale_table(scenario: str, params: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The `scale` scenario: one row per socket count on one instance of ours."""
    share = params["stream_share"]
    head = (
        f"== {scenario}: one instance of ours (Daphne, no nginx), N sockets on /ws/chat/<id>/ with browser"
        f" sessions; idle {params['idle_s']:g} s, then {share:.0%} of them stream {params['turns']} x"
        f" {params['tokens']} tokens, delay {params['delay_ms']:g} ms, at once =="
    )
    cols = ("sockets", "open s", "RSS MiB", "KiB/sock", "idle ms/sock/min", "streams", "relay p50")
    cols += ("p99 ms", "TTFT p99", "ms CPU/1k tok", "PG conns", "errors")
    widths = (7, 6, 7, 8, 16, 7, 9, 8, 8, 13, 8, 6)
    lines = [head, titles(cols, widths)]
    notes: list[str] = []
    for r in rows:
        label = f"{r.get('sockets', r['server'])}"
        if "idle" not in r or "p99_ms" not in r:
            lines.append(f"{label:>7}  FAILED: {r.get('failure', '?')}")
            continue
        idle, pg = r["idle"], r["postgres_connections"]
        cells = [
            label.rjust(7),
            fmt(idle["open_s"], ".1f").rjust(6),
            fmt(idle["rss_held_kib"] / 1024, ".0f").rjust(7),
            fmt(idle["kib_per_socket"], ".1f").rjust(8),
            fmt(idle["idle_cpu_ms_per_socket_min"], ".3f").rjust(16),
            f"{r['streams']}".rjust(7),
            fmt(r["p50_ms"], ".1f").rjust(9),
            fmt(r["p99_ms"], ".1f").rjust(8),
            fmt(r["first_token_p99_ms"], ".0f").rjust(8),
            fmt(r["cpu_ms_per_1k_tokens"], ".1f").rjust(13),
            f"{pg['peak']}/{pg['bound']}".rjust(8),
            f"{r['errors']}".rjust(6),
        ]
        lines.append("  ".join(cells))
        notes += scale_notes(label, r)
    return "\n".join([*lines, *notes])


def scale_notes(label: str, r: dict[str, Any]) -> list[str]:
    idle, pg = r["idle"], r["postgres_connections"]
    notes = [
        f"  {label}: {idle['opened']} of {r['sockets']} opened in {idle['open_s']:.1f} s"
        f" ({IDLE_CONNECT_CONCURRENCY} handshakes at a time, {idle['browsers']} browser sessions fetched in"
        f" {idle['cookies_s']:.1f} s), {fmt(idle['connect_cpu_us_per_socket'], '.0f')} µs server CPU per"
        f" connect; closed in {idle['close_s']:.1f} s; open-files limit {r['nofile'][0]}",
        f"  {label}: RSS {idle['rss_before_kib'] / 1024:.0f} MiB before, {idle['rss_open_kib'] / 1024:.0f}"
        f" open, {idle['rss_held_kib'] / 1024:.0f} held,"
        f" {idle['rss_after_close_kib'] / 1024:.0f} after close;"
        f" idle CPU {idle['idle_cpu_ms_per_min']:.0f} ms/min with the sockets"
        f" (main thread {idle['idle_main_thread_ms_per_min']:.0f}) vs {idle['baseline_cpu_ms_per_min']:.0f}"
        f" ms/min with none = {fmt(idle['idle_cpu_ms_per_socket_min_net'], '.3f')} ms/socket/min net",
        f"  {label}: streams: CPU {r['server_cpu_s']:.2f} s via {r['cpu_source']} (main thread"
        f" {r['main_thread_ms_per_1k_tokens']:.1f}, other threads {r['other_threads_ms_per_1k_tokens']:.1f}"
        f" ms/1k tokens), stand-in {r['standin_cpu_ms_per_1k_tokens']:.1f} ms/1k tokens; max"
        f" {r['max_ms']:.0f} ms, TTFT p50 {r['first_token_p50_ms']:.0f} ms; wall {r['wall_s']:.1f} s;"
        f" loadavg before {' '.join(f'{x:.2f}' for x in r['loadavg_before'])}",
        f"  {label}: Postgres connections of the bench database, peak by phase {pg['by_phase']}"
        f" (bound: CHAT_DB_POOL_MAX {pg['bound']})"
        + (f"; poll failed: {pg['failure']}" if "failure" in pg else ""),
    ]
    notes += arrived(label, r)
    if idle.get("first_error"):
        notes.append(f"  {label}: first connect failure: {idle['first_error']}")
    if idle["error_kinds"]:
        notes.append(f"  {label}: connect/idle errors {idle['error_kinds']}")
    if r["error_kinds"]:
        notes.append(f"  {label}: stream errors {r['error_kinds']}")
        notes += [f"    e.g. {sample}" for sample in r["error_samples"][:3]]
    notes += instance_notes(label, {"": r}, "run")
    if "db" in r:
        notes.append(db_note(label, r["db"], all_tables=False))
    return notes
