"""Where Dedalus is and what every request to it carries, decided in one place.

The SDK's client says it: the base URL, the key and the headers it would send. The process keeps one,
so the blocking calls (the catalog, OCR, the readiness check) share its connection pool, each with its
own timeout and retries (`sdk_client`). The calls made on the event loop (replies, titles, the MCP
credentials' key) go over one aiohttp session per instance (`upstream_client_create`), with the same
URL and headers.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import aiohttp
import dedalus_labs
import orjson
from django.conf import settings

from .mcp_wire import McpKeyCache

_shared: tuple[tuple[str, str | None], dedalus_labs.Dedalus] | None = None
_shared_lock = threading.Lock()


def sdk_client(*, timeout: float, max_retries: int) -> dedalus_labs.Dedalus:
    """The process's SDK client with `timeout` (seconds, each attempt) and `max_retries`: a view of the
    one client, on its connection pool (never closed by a caller: the next call uses the pool too)."""
    return _sdk_shared().with_options(timeout=timeout, max_retries=max_retries)


def _sdk_shared() -> dedalus_labs.Dedalus:
    """The SDK client for the current DEDALUS_API_KEY and DEDALUS_BASE_URL, made at first use."""
    global _shared
    wanted = (settings.DEDALUS_API_KEY, settings.DEDALUS_BASE_URL)
    with _shared_lock:
        if _shared is None or _shared[0] != wanted:
            # New settings (the tests change them) make a new client; calls still running on the old
            # one finish on its pool, which closes when the last of them lets it go.
            _shared = (wanted, dedalus_labs.Dedalus(api_key=wanted[0], base_url=wanted[1]))
        return _shared[1]


def _forked_child_forgets_the_parents_client() -> None:
    """In a process forked from this one: the pool's connections are the parent's sockets, and a thread
    of the parent may have held the lock at the fork, so the child makes its own client at first use."""
    global _shared, _shared_lock
    _shared, _shared_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forked_child_forgets_the_parents_client)


@dataclass(frozen=True, slots=True)
class UpstreamClient:
    """This instance's way to Dedalus: one aiohttp session (its connection pool, bound to the event loop
    that opened it) and what every completion request carries."""

    session: aiohttp.ClientSession
    completions_url: str
    headers: dict[str, str]
    mcp_keys: McpKeyCache

    async def close(self) -> None:
        await self.session.close()


def upstream_client_create() -> UpstreamClient:
    """A new client for this process's event loop (its instance keeps it).

    At most CHAT_UPSTREAM_MAX_CONNECTIONS requests are open at once; a reply beyond them waits for a
    free connection as long as it may wait for its first token (its own deadline ends the wait): a busy
    instance queues replies. The SDK's client gives the base URL, the key and the headers it would send.
    """
    sdk = _sdk_shared()
    headers = {name: value for name, value in sdk.default_headers.items() if isinstance(value, str)}
    base_url = str(sdk.base_url).rstrip("/")
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings.CHAT_UPSTREAM_MAX_CONNECTIONS),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.CHAT_UPSTREAM_CONNECT_TIMEOUT),
        json_serialize=lambda value: orjson.dumps(value).decode(),
    )
    return UpstreamClient(
        session=session,
        completions_url=f"{base_url}/v1/chat/completions",
        headers=headers,
        mcp_keys=McpKeyCache(session),
    )
