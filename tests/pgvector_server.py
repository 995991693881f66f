"""PostgreSQL 18 with pgvector for the tests that need it (the machine's Postgres 15 has none), started and
stopped by scripts/embedded-postgres.py as `make run` starts its own; the rest of the suite stays on the
Postgres at DATABASE_URL.

Plain Python (no Django, no pytest), as processes.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .processes import ROOT

SCRIPT = ROOT / "scripts" / "embedded-postgres.py"


@contextmanager
def data_dir_made() -> Iterator[Path]:
    """A folder for a server's data, removed afterwards. Not under pytest's tmp_path: as root the server
    runs as the user `embedded_postgres`, who must reach it, and every pytest session on the machine
    makes pytest's own folder private again."""
    parent = Path(tempfile.mkdtemp(prefix="chat-postgres-"))
    try:
        yield parent / "postgres"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def pgvector_server_start(data_dir: Path) -> str:
    """Start a server whose data is in `data_dir` (made when missing); return its `chat` database's URL."""
    started = subprocess.run(
        [sys.executable, SCRIPT, "start", data_dir], capture_output=True, text=True, timeout=120, check=False
    )
    assert started.returncode == 0, f"the embedded Postgres did not start: {started.stderr[-2000:]}"
    url, _state = started.stdout.split()
    return url


def pgvector_server_stop(data_dir: Path) -> None:
    """Stop the server of `data_dir`."""
    subprocess.run([sys.executable, SCRIPT, "stop", data_dir], timeout=120, check=True)


def postmaster_running(data_dir: Path) -> bool:
    """Whether a server holds `data_dir`: Postgres removes its postmaster.pid when it stops cleanly."""
    return (data_dir / "postmaster.pid").exists()
