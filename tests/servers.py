"""Talking to real server processes (tests/processes.py starts them) as a browser would: its session, a tab's
WebSocket, and checks of the text a tab received."""

from __future__ import annotations

import asyncio
import re
import select
import socket
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from .processes import HOST, HttpServer

STAMP_RE = re.compile(r"(\d+)@\d+ ")


# Each HTTP client session is one anonymous browser: its sockets share one owner, on every instance.
_browser_cookies: weakref.WeakKeyDictionary[aiohttp.ClientSession, str] = weakref.WeakKeyDictionary()


async def page_session_headers(http: aiohttp.ClientSession, origin: str) -> dict[str, str]:
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

    def __init__(self, http: aiohttp.ClientSession, server: HttpServer, session_id: str) -> None:
        self.http, self.server, self.session_id = http, server, session_id
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.history: dict[str, Any] = {}
        self.received_at: list[float] = []  # loop time each frame was read (reading concurrently: arrival)

    async def connect(self) -> ChatClient:
        self.ws = await self.http.ws_connect(
            self.server.ws_url(self.session_id),
            headers=await page_session_headers(self.http, self.server.origin),
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


async def form_headers(http: aiohttp.ClientSession, origin: str) -> dict[str, str]:
    """What the page's own forms send: the browser's session cookie, and the CSRF cookie and header."""
    browser = await page_session_headers(http, origin)
    async with http.get(f"{origin}/c/warmup/", headers={"Cookie": browser["Cookie"]}) as response:
        token = response.cookies["csrftoken"].value
    return {"Cookie": f"{browser['Cookie']}; csrftoken={token}", "X-CSRFToken": token, "Origin": origin}


# Raw HTTP/1.1 over a socket, for what an HTTP library hides: a body sent piece by piece (declared or
# chunked) while the answer may already be on its way, and whether the server closed the connection.


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the server took before the answer (or an error) stopped the sending
    closed: bool  # the server closed the connection after its answer

    def json(self) -> Any:
        return orjson.loads(self.body)


def raw_request(
    port: int,
    head: str,
    pieces: Iterable[bytes],
    *,
    chunked: bool = False,
    read_early: bool = True,
    wait: float = 30,
    close_wait: float = 5,
) -> RawAnswer:
    """Send the request line and headers `head` (without the blank line), then each piece of the body (as
    a chunk of its own when `chunked`) until the server resets, or (`read_early`) answers; read the answer
    (its Content-Length) and whether the connection ends within `close_wait` seconds after it (0: not
    asked)."""
    sent = 0
    with socket.create_connection((HOST, port), timeout=wait) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n")
        try:
            for piece in pieces:
                if read_early and select.select([sock], [], [], 0)[0]:
                    break  # the answer came before the end of the body
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while b"\r\n\r\n" not in data:
            received = sock.recv(65536)
            assert received, f"the connection closed before an answer: {data!r}"
            data += received
        top, body = data.split(b"\r\n\r\n", 1)
        status_line, *lines = top.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
        while len(body) < int(headers.get("content-length", 0)):
            received = sock.recv(65536)
            assert received, "the connection closed in the middle of the answer"
            body += received
        closed = False
        if close_wait > 0:
            sock.settimeout(close_wait)
            try:
                closed = sock.recv(1) == b""
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed = True
    return RawAnswer(int(status_line.split()[1]), headers, body, sent, closed)
