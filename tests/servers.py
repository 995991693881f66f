"""Real server processes for tests: Daphne instances of the app and a private Redis, on free ports."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
STAMP_RE = re.compile(r"(\d+)@\d+ ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_stop(proc: subprocess.Popen[Any] | None, wait: float = 10) -> None:
    """SIGTERM a process still running, and SIGKILL it if it has not exited after `wait` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def port_wait(port: int, proc: subprocess.Popen[Any], log: Path, timeout: float = 30) -> None:
    """Wait until something accepts on `port`; fail with the process log if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing accepted on port {port} within {timeout} s:\n{log.read_text()[-3000:]}")


@dataclass
class DaphneServer:
    """One instance of the chat server (`daphne chatproject.asgi:application`) on its own port."""

    name: str
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> DaphneServer:
        daphne = Path(sys.executable).with_name("daphne")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(daphne), "-b", "127.0.0.1", "-p", str(self.port), "chatproject.asgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        port_wait(self.port, self.proc, self.log)
        return self

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        process_stop(self.proc, wait=15)

    def ws_url(self, session_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/ws/chat/{session_id}/"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def server_env(*, database_name: str, redis_url: str, standin_url: str, **extra: str) -> dict[str, str]:
    """The environment of a server instance on the test database, a Redis and the stand-in."""
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chat")
    base = database_url.rsplit("/", 1)[0]
    return {
        **os.environ,
        "DATABASE_URL": f"{base}/{database_name}",
        "REDIS_URL": redis_url,
        "DEDALUS_BASE_URL": standin_url,
        "DEDALUS_API_KEY": "test-key",
        "DJANGO_SECRET_KEY": "test-only-secret-key-not-for-production",
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CHAT_LOG_LEVEL": "INFO",
        "CHAT_DB_POOL_MAX": "8",
        **extra,
    }


@dataclass
class RedisServer:
    """A private redis-server, so a test can stop and restart it without touching the machine's."""

    log_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        log = self.log_dir / f"redis-{self.port}.log"
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        port_wait(self.port, self.proc, log)
        return self

    def stop(self) -> None:
        process_stop(self.proc)


# Each HTTP client session is one anonymous browser: its sockets share one owner, on every instance.
_browser_cookies: weakref.WeakKeyDictionary[aiohttp.ClientSession, str] = weakref.WeakKeyDictionary()


async def browser_headers(http: aiohttp.ClientSession, origin: str) -> dict[str, str]:
    """The handshake headers of the browser `http` stands for: its origin, and the session cookie a page
    at `origin` gave it on first use (the instances share the database, so the session holds on each).
    The chat page's socket path refuses cookie-less handshakes."""
    if http not in _browser_cookies:
        async with http.get(f"{origin}/c/warmup/") as response:
            response.raise_for_status()
            # A session the jar already holds is not set again.
            cookie = response.cookies.get("sessionid") or next(
                (cookie for cookie in http.cookie_jar if cookie.key == "sessionid"), None
            )
            assert cookie is not None, "the chat page gave no session cookie"
            _browser_cookies[http] = f"sessionid={cookie.value}"
    return {"Origin": origin, "Cookie": _browser_cookies[http]}


class ChatClient:
    """A WebSocket client of one server instance, as a browser tab would be."""

    def __init__(self, http: aiohttp.ClientSession, server: DaphneServer, session_id: str) -> None:
        self.http, self.server, self.session_id = http, server, session_id
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.history: dict[str, Any] = {}
        self.received_at: list[float] = []  # loop time each frame was read (reading concurrently: arrival)

    async def connect(self) -> ChatClient:
        self.ws = await self.http.ws_connect(
            self.server.ws_url(self.session_id), headers=await browser_headers(self.http, self.server.origin)
        )
        self.history = await self.receive()
        assert self.history["type"] == "history", self.history
        return self

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(orjson.dumps(frame).decode())

    async def receive(self, wait: float = 15) -> dict[str, Any]:
        assert self.ws is not None
        message = await self.ws.receive(timeout=wait)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        self.received_at.append(asyncio.get_running_loop().time())
        return orjson.loads(message.data)

    async def until_end(self, wait: float = 15) -> list[dict[str, Any]]:
        """Frames up to and including the reply's `done` or `error` (their times in `received_at`)."""
        self.received_at = []
        frames = []
        while True:
            frame = await self.receive(wait)
            frames.append(frame)
            if frame["type"] in ("done", "error"):
                return frames

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def text_after(offset: int, frames: list[dict[str, Any]]) -> str:
    """Join chunk frames, checking each starts exactly where the text so far ends (no gap, no repeat)."""
    text = ""
    for frame in frames:
        if frame["type"] == "chunk":
            assert frame["offset"] == offset + len(text), (frame["offset"], offset + len(text))
            text += frame["content"]
    return text


def stamp_indices(text: str) -> list[int]:
    """The token indices of a stamped stand-in reply, in order."""
    return [int(match) for match in STAMP_RE.findall(text)]


async def until(predicate: Any, wait: float = 15, interval: float = 0.05) -> Any:
    """Poll an async predicate until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)
