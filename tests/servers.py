"""Talking to real server processes (tests/processes.py starts them) as a browser would: its session, a tab's
WebSocket, and checks of the text a tab received."""

from __future__ import annotations

import asyncio
import re
import weakref
from typing import Any

import aiohttp
import orjson

from .processes import HttpServer

STAMP_RE = re.compile(r"(\d+)@\d+ ")


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

    def __init__(self, http: aiohttp.ClientSession, server: HttpServer, session_id: str) -> None:
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
