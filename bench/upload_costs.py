"""What a small hostile upload costs an instance: each file of tests/upload_bombs.py POSTed to
`/api/attachments/` of a real Daphne (scripts/serve.sh's flags), one at a time, while another client asks
`/healthz` every 100 ms.

Not a test. Reports, per file (`--parallel N`: N copies at once): its size, the answers, the slowest
upload's wall time, the CPU the instance and every process under it spent meanwhile (its upload workers
included, killed ones too: a fork server reaps them), the peak growth of their summed RSS, and the
slowest `/healthz`. Run it from the repository root, with a migrated database and the Redis the
instance should use:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chat_bench REDIS_URL=redis://127.0.0.1:6379/5 \
        .venv/bin/python -m bench.upload_costs [--only NAME,...] [--parallel N] [--checkout DIR] [--timeout S]

`--checkout DIR` runs another checkout of this project (e.g. `git archive <commit> | tar -x -C DIR`) with
this venv, to compare before and after a change; an upload still unanswered after `--timeout` seconds is
reported as such and the instance restarted.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests import upload_bombs
from tests.processes import HOST, ROOT, SERVE_FLAGS, DaphneServer

from .bodies import healthz_ms, lone_server_env

BOUNDARY = "bench-boundary-5e2a"
TICKS = os.sysconf("SC_CLK_TCK")
BOMBS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "pdf-shared-stream": ("bomb.pdf", upload_bombs.pdf_shared_content_bomb),
    "pdf-form-xobject": ("form.pdf", upload_bombs.pdf_form_xobject_bomb),
    "jpeg-scans": ("scans.jpg", upload_bombs.jpeg_scan_bomb),
    "webp-40mp": ("big.webp", upload_bombs.lossless_pixels_bomb),
    "png-40mp": ("big.png", lambda: upload_bombs.lossless_pixels_bomb("PNG")),
    # Just under the pixel cap: decoded in full, the worst an accepted image costs.
    "webp-24mp": ("wide.webp", lambda: upload_bombs.lossless_pixels_bomb(size=(6_000, 4_000))),
}


def tree(root: int) -> list[int]:
    """`root` and every process under it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu_seconds(root: int) -> float:
    """User and system CPU of the tree, its reaped children's included."""
    total = 0
    for pid in tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def tree_rss_mib(root: int) -> float:
    total = 0
    for pid in tree(root):
        try:
            match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
        except OSError:
            continue
        total += int(match.group(1)) if match else 0
    return total / 1024


def session(port: int) -> tuple[str, str]:
    """A browser session's cookies and its CSRF token, from the chat page."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    connection.request("GET", "/c/bench-uploads/")
    response = connection.getresponse()
    response.read()
    cookies = {}
    for header, value in response.getheaders():
        if header.lower() == "set-cookie":
            name, _, rest = value.partition("=")
            cookies[name] = rest.split(";", 1)[0]
    connection.close()
    return "; ".join(f"{key}={value}" for key, value in cookies.items()), cookies.get("csrftoken", "")


def upload(port: int, name: str, data: bytes, timeout: float, result: dict[str, object]) -> None:
    cookie, token = session(port)
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    started = time.monotonic()
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(
            "POST",
            "/api/attachments/",
            body,
            {
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                "Cookie": cookie,
                "X-CSRFToken": token,
                "Origin": f"http://{HOST}:{port}",
                "Referer": f"http://{HOST}:{port}/c/bench-uploads/",
            },
        )
        response = connection.getresponse()
        result["answer"] = f"{response.status} {response.read()[:140].decode(errors='replace')}"
        result["retry_after"] = response.getheader("Retry-After")
    except OSError as exc:
        result["answer"] = f"no answer ({type(exc).__name__})"
    result["seconds"] = time.monotonic() - started


def measure(server: DaphneServer, name: str, data: bytes, timeout: float, parallel: int) -> str:
    for _ in range(3):
        healthz_ms(server.port)
    upload(server.port, "warm-up.txt", b"starts the upload workers, if any", timeout, {})
    cpu_before, rss_before = tree_cpu_seconds(server.pid), tree_rss_mib(server.pid)
    results: list[dict[str, object]] = [{} for _ in range(parallel)]
    threads = [
        threading.Thread(target=upload, args=(server.port, name, data, timeout, result)) for result in results
    ]
    for thread in threads:
        thread.start()
    slowest, peak = 0.0, rss_before
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, tree_rss_mib(server.pid))
        slowest = max(slowest, healthz_ms(server.port))
        time.sleep(0.1)
    cpu = tree_cpu_seconds(server.pid) - cpu_before
    answers = sorted({str(result.get("answer"))[:100] for result in results})
    seconds = max(float(result.get("seconds", 0)) for result in results)  # type: ignore[arg-type]
    return (
        f"{len(data):>10,} B x{parallel}  {seconds:6.1f} s wall  {cpu:6.1f} s CPU  "
        f"RSS +{peak - rss_before:5.0f} MiB  slowest /healthz {slowest:6.0f} ms  -> {' | '.join(answers)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BOMBS), help="bombs to send, comma-separated")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="run this checkout of the project")
    parser.add_argument("--timeout", type=float, default=90, help="seconds to wait for an answer")
    parser.add_argument("--parallel", type=int, default=1, help="copies of each file sent at once")
    args = parser.parse_args()
    env = lone_server_env(CHAT_ANONYMOUS_UPLOAD_RATE="", CHAT_ANONYMOUS_UPLOAD_BYTES_PER_DAY="0")
    for key in args.only.split(","):
        name, build = BOMBS[key]
        data = build()
        with tempfile.TemporaryDirectory() as logs:
            env["CHAT_MEDIA_ROOT"] = logs
            server = DaphneServer("uploads", env, Path(logs), flags=SERVE_FLAGS, cwd=args.checkout).start()
            try:
                print(f"{key:<18} {measure(server, name, data, args.timeout, args.parallel)}", flush=True)
            finally:
                server.stop()


if __name__ == "__main__":
    main()
