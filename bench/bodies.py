"""What an upload body costs an instance: one multipart POST of a given size to `/api/attachments/` through
a real Daphne (scripts/serve.sh's flags), while another client asks `/healthz` every 50 ms.

Not a test. Reports the server's peak memory growth (VmHWM from /proc, after a warm-up), the slowest
`/healthz` answer while the upload was under way, and what the upload got back. Run it from the
repository root, with the database and Redis the instance should use:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chat_bench REDIS_URL=redis://127.0.0.1:6379/5 \
        .venv/bin/python -m bench.bodies --mib 50,200 [--checkout DIR]

`--checkout DIR` runs another checkout of this project (e.g. `git archive <commit> | tar -x -C DIR`) with
this venv, to compare before and after a change.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from tests.processes import HOST, ROOT, SERVE_FLAGS, DaphneServer, proc_status_kib, server_env

BOUNDARY = "bench-boundary-7d1c"
CHUNK = b"x" * (1024 * 1024)


def multipart_head(size: int) -> tuple[bytes, bytes]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    return head, f"\r\n--{BOUNDARY}--\r\n".encode()


def upload(port: int, size: int, result: dict[str, object]) -> None:
    """POST a multipart body whose file is `size` bytes, written 1 MiB at a time; then read the answer."""
    head, tail = multipart_head(size)
    length = len(head) + size + len(tail)
    started = time.monotonic()
    with socket.create_connection((HOST, port)) as sock:
        sock.sendall(
            (
                f"POST /api/attachments/ HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {length}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nConnection: close\r\n\r\n"
            ).encode()
            + head
        )
        sent = 0
        try:
            while sent < size:
                piece = CHUNK[: min(len(CHUNK), size - sent)]
                sock.sendall(piece)
                sent += len(piece)
            sock.sendall(tail)
        except OSError as exc:
            result["send_error"] = f"{type(exc).__name__} after {sent:,} bytes"
        answer = b""
        try:
            sock.settimeout(120)
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError as exc:
            result["recv_error"] = type(exc).__name__
    result["seconds"] = time.monotonic() - started
    result["answer"] = (
        answer.split(b"\r\n", 1)[0].decode(errors="replace")
        + " "
        + answer[-160:].decode(errors="replace").rsplit("\r\n\r\n", 1)[-1]
    )


def lone_server_env(**overrides: str) -> dict[str, str]:
    """One instance's environment, with no upstream (nothing here asks it): the database and Redis of
    DATABASE_URL and REDIS_URL, or the bench's."""
    database = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chat_bench")
    return server_env(
        database_name=database.rsplit("/", 1)[1],
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/5"),
        standin_url="http://127.0.0.1:9",
        CHAT_LOG_LEVEL="WARNING",
        **overrides,
    )


def healthz_ms(port: int) -> float:
    started = time.monotonic()
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    connection.request("GET", "/healthz")
    connection.getresponse().read()
    connection.close()
    return (time.monotonic() - started) * 1000


def measure(server: DaphneServer, mib: float) -> str:
    for _ in range(5):
        healthz_ms(server.port)
    before = proc_status_kib(server.pid, "VmHWM")
    result: dict[str, object] = {}
    thread = threading.Thread(target=upload, args=(server.port, int(mib * 1024 * 1024), result))
    thread.start()
    slowest = 0.0
    while thread.is_alive():
        slowest = max(slowest, healthz_ms(server.port))
        time.sleep(0.05)
    for _ in range(20):  # whatever the server still does after it answered
        slowest = max(slowest, healthz_ms(server.port))
        time.sleep(0.05)
    growth = (proc_status_kib(server.pid, "VmHWM") - before) / 1024
    return (
        f"{mib:g} MiB multipart: peak RSS +{growth:,.0f} MiB, slowest /healthz {slowest:,.0f} ms, "
        f"upload {result.get('seconds', 0):.1f} s -> {result.get('answer', '')!r}"
        + "".join(f" {key}={result[key]}" for key in ("send_error", "recv_error") if key in result)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", default="50,200", help="file sizes in MiB, comma-separated")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="run this checkout of the project")
    args = parser.parse_args()
    env = lone_server_env()
    for mib in (float(size) for size in args.mib.split(",")):
        with tempfile.TemporaryDirectory() as logs:
            server = DaphneServer("bodies", env, Path(logs), flags=SERVE_FLAGS, cwd=args.checkout).start()
            try:
                print(measure(server, mib), flush=True)
            finally:
                server.stop()


if __name__ == "__main__":
    main()
