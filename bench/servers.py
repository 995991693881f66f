"""What the bench runs and what the servers run on: ours (and `--before`'s) as Daphne, the seed and the
bare relay from the baselines, nginx; the scratch database, the bench's Redis, the open-files limit."""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import secrets
import shlex
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.processes import DaphneServer, HttpServer, Nginx, Server

from . import log

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
BASELINES = Path(os.environ.get("BENCH_BASELINES_DIR") or REPO.parent / "shared" / "baselines")
OUR_PYTHON = Path(sys.executable)
SEED_VENV = BENCH / ".venv-seed"
SEED_REQUIREMENTS = BENCH / "requirements-seed.txt"
ADMIN_DB_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_DB = os.environ.get("BENCH_PG_DATABASE", "chat_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
BENCH_SECRET_KEY = "bench-" + secrets.token_urlsafe(32)
NGINX = Path(os.environ.get("BENCH_NGINX", "/usr/sbin/nginx"))
# Open files: the bench process (its client sockets), Daphne (inherits it) and nginx (worker_rlimit_nofile).
NOFILE_TARGET = 8192
NGINX_WORKER_CONNECTIONS = 4096
# The kinds of server, and the variables of its environment its command line shows in the JSON.
OURS = ("ours", "before")
SHOWN_ENV = {
    "ours": ("DATABASE_URL", "REDIS_URL", "CHAT_EVENT_BUS", "DEDALUS_BASE_URL", "CHAT_MAX_SOCKETS_PER_OWNER"),
    "before": ("DATABASE_URL", "REDIS_URL", "CHAT_EVENT_BUS", "DEDALUS_BASE_URL"),
    "seed": ("DEDALUS_API_KEY", "DEDALUS_BASE_URL"),
    "bare": (),
}


class Baseline(HttpServer):
    """A reference server of the baselines directory: `PYTHON SCRIPT PORT [ARGS]`."""

    def __init__(
        self, name: str, log_dir: Path, *, python: Path, script: str, args: Sequence[str], env: dict[str, str]
    ) -> None:
        super().__init__(name, log_dir, env=env, cwd=BASELINES)
        self.python, self.script, self.args = python, script, list(args)

    def command(self) -> list[str]:
        return [str(self.python), str(BASELINES / self.script), str(self.port), *self.args]


def server_start(
    kind: str,
    standin_url: str,
    log_dir: Path,
    name: str,
    *,
    flags: Sequence[str] = (),
    before: Path | None = None,
    env: dict[str, str] | None = None,
) -> HttpServer:
    """Start a server of `kind` (ours, before, seed or bare) pointed at the stand-in, its output in
    `<log_dir>/<name>.log`; return it once its port accepts. `flags` are Daphne's and `env` overrides
    variables of its environment (ours, before)."""
    server: HttpServer
    if kind in OURS:
        cwd = REPO if kind == "ours" else before
        assert cwd is not None
        server = DaphneServer(
            name, {**ours_env(standin_url, kind), **(env or {})}, log_dir, flags=flags, cwd=cwd
        )
    elif kind == "seed":
        env = dict(os.environ, DEDALUS_API_KEY="bench", DEDALUS_BASE_URL=standin_url, PYTHONUNBUFFERED="1")
        server = Baseline(name, log_dir, python=ensure_seed_venv(), script="seed_server.py", args=(), env=env)
    elif kind == "bare":
        # The bare relay sends no Authorization header and the stand-in refuses requests without one;
        # credentials in the URL make aiohttp send one (Basic), with no change to either program.
        upstream = standin_url.replace("http://", "http://bench:bench@", 1)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        server = Baseline(name, log_dir, python=OUR_PYTHON, script="bare_relay.py", args=(upstream,), env=env)
    else:
        raise ValueError(kind)
    return server.start(timeout=60)


def nginx_start(prefix: Path, upstream_ports: list[int]) -> Nginx:
    """nginx with deploy/nginx.conf in front of `upstream_ports`, sized for the bench's sockets."""
    nginx = Nginx(
        prefix,
        upstream_ports,
        binary=NGINX,
        worker_connections=NGINX_WORKER_CONNECTIONS,
        nofile=NOFILE_TARGET,
    )
    return nginx.start()


def command_line(server: Server, kind: str = "") -> str:
    """The server's command as a shell would run it, after the variables of its environment it depends on."""
    env = server.env or {}
    return " ".join([*(f"{key}={env[key]}" for key in SHOWN_ENV.get(kind, ())), shlex.join(server.command())])


def ours_env(standin_url: str, kind: str = "ours") -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=bench_db_url(kind),
        REDIS_URL=REDIS_URL,
        # Taken from the bench's environment (`CHAT_EVENT_BUS=channels-redis python -m bench ...`).
        CHAT_EVENT_BUS=env.get("CHAT_EVENT_BUS") or "redis",
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


def raise_nofile(target: int = NOFILE_TARGET) -> tuple[int, int]:
    """Raise this process's open-files limit (Daphne, started after, inherits it) to `target`, the hard
    limit too when it is lower and the process may (CAP_SYS_RESOURCE); otherwise up to the hard limit.
    Return (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --------------------------------------------------------------------------------------------------
# Postgres and Redis (ours only)


def pg_connect(dbname: str | None = None):
    import psycopg

    url = ADMIN_DB_URL if dbname is None else ADMIN_DB_URL.rsplit("/", 1)[0] + "/" + dbname
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def bench_db_name(kind: str = "ours") -> str:
    """Ours and `before` each get a scratch database migrated by its own code (their schemas may differ)."""
    return BENCH_DB if kind == "ours" else f"{BENCH_DB}_{kind}"


def bench_db_url(kind: str = "ours") -> str:
    return ADMIN_DB_URL.rsplit("/", 1)[0] + "/" + bench_db_name(kind)


def bench_db_create(kind: str = "ours") -> None:
    with pg_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_db_name(kind)}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{bench_db_name(kind)}"')


def bench_db_drop(kind: str = "ours") -> None:
    with contextlib.suppress(Exception), pg_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_db_name(kind)}" WITH (FORCE)')


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


def migrate_bench_db(kind: str = "ours", before: Path | None = None) -> None:
    env = ours_env("http://127.0.0.1:9", kind)
    cmd = [str(OUR_PYTHON), "manage.py", "migrate", "--no-input", "-v0"]
    cwd = REPO if kind == "ours" else before
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{done.stdout}\n{done.stderr}")


def redis_flush() -> None:
    """Empty the bench's Redis database (reply logs, limits) before a run of ours."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
    try:
        client.flushdb()
    finally:
        client.close()
