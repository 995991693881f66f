"""`make run` and `make admin` as a newcomer types them: no settings known, a port maybe taken."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from .pgvector_server import data_dir_made, pgvector_server_start, pgvector_server_stop, postmaster_running
from .processes import HOST, ROOT, free_port

pytestmark = pytest.mark.subprocess


@pytest.fixture
def database_dir() -> Iterator[Path]:
    """Where make run keeps its embedded Postgres's data for this test (its .data/postgres/ otherwise)."""
    with data_dir_made() as data_dir:
        yield data_dir


def newcomer_env(database_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of someone who has set nothing of ours: none of the suite's DJANGO_, CHAT_,
    DEDALUS_ or database settings; only make run's embedded Postgres keeps its data in `database_dir`."""
    ours = ("DJANGO_", "CHAT_", "DEDALUS_", "DATABASE_URL", "REDIS_URL")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return {**clean, "CHAT_EMBEDDED_POSTGRES_DIR": str(database_dir), **extra}


def run_script_refused(database_dir: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`make run` with `settings`, expected to stop at once (a minute at the most)."""
    env = newcomer_env(database_dir, **settings)
    return subprocess.run(["scripts/run.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def superusers(database_dir: Path) -> list[str]:
    """The superusers in make run's database, through its server's socket in `database_dir`."""
    with psycopg.connect(host=str(database_dir), user="postgres", dbname="chat") as db:
        return [
            name for (name,) in db.execute("SELECT username FROM auth_user WHERE is_superuser ORDER BY 1")
        ]


def test_make_run_says_when_its_address_is_taken_and_stops_before_setting_up(database_dir):
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        bind = f"{HOST}:{holder.getsockname()[1]}"
        result = run_script_refused(database_dir, CHAT_BIND=bind)
    assert result.returncode == 1
    assert f"Cannot serve on {bind}: something already listens there" in result.stderr
    assert "CHAT_BIND=127.0.0.1:8001 make run" in result.stderr
    assert "Traceback" not in result.stderr
    assert not database_dir.exists()  # nothing set up: not even the database


def test_make_run_says_when_the_standins_port_is_taken(database_dir):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_script_refused(
            database_dir, CHAT_BIND=f"{HOST}:{free_port()}", CHAT_STANDIN_PORT=str(port)
        )
    assert result.returncode == 1
    assert f"stand-in of the Dedalus API on port {port}" in result.stderr
    assert "CHAT_STANDIN_PORT=4011 make run" in result.stderr


def test_make_run_says_when_its_database_cannot_start(database_dir):
    result = run_script_refused(
        database_dir,
        CHAT_BIND=f"{HOST}:{free_port()}",
        CHAT_STANDIN_PORT=str(free_port()),
        CHAT_EMBEDDED_POSTGRES_DIR="/dev/null/postgres",  # a folder that cannot be made
    )
    assert result.returncode == 1
    assert "Could not start the embedded Postgres (its log: /dev/null/postgres/log)." in result.stderr
    assert "Chat: " not in result.stdout


def test_make_run_serves_on_its_embedded_postgres_prints_an_admin_command_that_works_and_stops_it(
    database_dir,
):
    bind = f"{HOST}:{free_port()}"
    env = newcomer_env(database_dir, CHAT_BIND=bind, CHAT_STANDIN_PORT=str(free_port()))
    server = subprocess.Popen(
        ["scripts/run.sh"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        assert server.stdout is not None
        lines = []
        for line in server.stdout:
            lines.append(line)
            if line.startswith("Chat: "):
                break
        assert lines[-1].split() == [
            "Chat:",
            f"http://{bind}/",
            "Admin:",
            f"http://{bind}/admin/",
            "First",
            "admin",
            "account:",
            "make",
            "admin",
        ], "".join(lines)
        page = None
        deadline = time.monotonic() + 60
        while page is None and time.monotonic() < deadline:
            try:
                page = httpx.get(f"http://{bind}/", follow_redirects=True, timeout=5)
            except httpx.TransportError:
                time.sleep(0.2)
        assert page is not None
        assert page.status_code == 200

        with psycopg.connect(host=str(database_dir), user="postgres", dbname="chat") as db:
            (version,) = db.execute("SHOW server_version_num").fetchone()
            assert int(version) >= 180000  # the wheel's PostgreSQL 18, with pgvector to create
            assert db.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()

        assert admin_created(database_dir, "ops").returncode == 0  # the command the banner names
        assert superusers(database_dir) == ["ops"]
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        try:
            server.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)  # whatever did not stop
            server.wait()
    assert not postmaster_running(database_dir)  # make run stopped the database it started

    # Without make run, make admin starts the same database for the command and stops it again.
    assert admin_created(database_dir, "ops2").returncode == 0
    assert not postmaster_running(database_dir)
    pgvector_server_start(database_dir)  # as the next make run will
    try:
        assert superusers(database_dir) == ["ops", "ops2"]
    finally:
        pgvector_server_stop(database_dir)


def admin_created(database_dir: Path, username: str) -> subprocess.CompletedProcess[str]:
    """`make admin` as typed, answered by the environment: a superuser `username`."""
    created = subprocess.run(
        ["scripts/admin.sh", "--no-input", "--username", username, "--email", f"{username}@example.com"],
        cwd=ROOT,
        env={**newcomer_env(database_dir), "DJANGO_SUPERUSER_PASSWORD": "pw-for-tests-only"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    return created
