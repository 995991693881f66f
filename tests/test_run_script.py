"""`make run` and `make admin` as a newcomer types them: no settings known, a port maybe taken."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from .processes import HOST, ROOT, free_port

pytestmark = pytest.mark.subprocess


def newcomer_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of someone who has set nothing of ours: none of the suite's DJANGO_, CHAT_,
    DEDALUS_ or database settings, and a database of their own (make run's SQLite, in `tmp_path`)."""
    ours = ("DJANGO_", "CHAT_", "DEDALUS_", "DATABASE_URL", "REDIS_URL")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return {**clean, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **extra}


def run_script_refused(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`make run` with `settings`, expected to stop at once (a minute at the most)."""
    env = newcomer_env(tmp_path, **settings)
    return subprocess.run(["scripts/run.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_make_run_says_when_its_address_is_taken_and_stops_before_setting_up(tmp_path):
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        bind = f"{HOST}:{holder.getsockname()[1]}"
        result = run_script_refused(tmp_path, CHAT_BIND=bind)
    assert result.returncode == 1
    assert f"Cannot serve on {bind}: something already listens there" in result.stderr
    assert "CHAT_BIND=127.0.0.1:8001 make run" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "db.sqlite3").exists()  # nothing set up: not even migrated


def test_make_run_says_when_the_standins_port_is_taken(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_script_refused(tmp_path, CHAT_BIND=f"{HOST}:{free_port()}", CHAT_STANDIN_PORT=str(port))
    assert result.returncode == 1
    assert f"stand-in of the Dedalus API on port {port}" in result.stderr
    assert "CHAT_STANDIN_PORT=4011 make run" in result.stderr


def test_make_run_prints_the_address_it_serves_and_an_admin_command_that_works_as_typed(tmp_path):
    bind = f"{HOST}:{free_port()}"
    env = newcomer_env(tmp_path, CHAT_BIND=bind, CHAT_STANDIN_PORT=str(free_port()))
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

        created = subprocess.run(  # the command the banner names, as `make admin` runs it
            ["scripts/admin.sh", "--no-input", "--username", "ops", "--email", "ops@example.com"],
            cwd=ROOT,
            env={**newcomer_env(tmp_path), "DJANGO_SUPERUSER_PASSWORD": "pw-for-tests-only"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        with sqlite3.connect(tmp_path / "db.sqlite3") as db:
            assert db.execute("SELECT is_superuser FROM auth_user WHERE username = 'ops'").fetchall() == [
                (1,)
            ]
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        try:
            server.wait(timeout=20)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)  # whatever did not stop
            server.wait()
