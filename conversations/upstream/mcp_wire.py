"""MCP servers as a request sends them: the SDK's wire form (`org/name@v1` becomes a slug and a version),
with each server's credentials encrypted to the authorisation server's public key the way the SDK does
(RSA-OAEP wrapping an AES-GCM envelope, its own `encrypt_credentials`).

The SDK fetches that key from `DEDALUS_AS_URL/.well-known/jwks.json` on every request; here an instance
keeps it CHAT_MCP_KEY_TTL_SECONDS, and fetches it again at once when a request that carried credentials
is refused (the server may have rotated its key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import orjson
from dedalus_labs.lib.crypto import encrypt_credentials, jwk_to_public_key
from dedalus_labs.lib.mcp.wire import serialize_mcp_servers, slug_to_connection_name
from django.conf import settings

from ..exceptions import UpstreamError


class McpKeyCache:
    """One instance's copy of the authorisation server's encryption key, fetched when first needed."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._key: Any = None
        self._fingerprint = ""
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many times the key was fetched (the cache's tests read it)

    async def key(self, *, not_fingerprint: str | None = None) -> tuple[Any, str]:
        """The public key and its fingerprint. With `not_fingerprint` (the key a refused request used),
        fetch it again unless another request already did."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            stale = loop.time() - self._fetched_at >= settings.CHAT_MCP_KEY_TTL_SECONDS
            if self._key is None or stale or self._fingerprint == not_fingerprint:
                try:
                    self._key, self._fingerprint = await self._fetch()
                    self._fetched_at = loop.time()
                except UpstreamError:
                    if self._key is None or self._fingerprint == not_fingerprint:
                        raise
                    # A stale key still works until the server says otherwise; try again next time.
            return self._key, self._fingerprint

    async def _fetch(self) -> tuple[Any, str]:
        url = f"{settings.DEDALUS_AS_URL.rstrip('/')}/.well-known/jwks.json"
        self.fetches += 1
        try:
            timeout = aiohttp.ClientTimeout(total=settings.CHAT_UPSTREAM_CONNECT_TIMEOUT * 2)
            async with self._session.get(url, timeout=timeout) as response:
                if response.status != 200:
                    raise UpstreamError(
                        f"The MCP credentials key could not be fetched ({response.status}).", retryable=True
                    )
                keys = orjson.loads(await response.read()).get("keys", [])
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, AttributeError) as exc:
            raise UpstreamError("The MCP credentials key could not be fetched.", retryable=True) from exc
        for jwk in keys if isinstance(keys, list) else []:
            if isinstance(jwk, dict) and jwk.get("kty") == "RSA" and jwk.get("use") == "enc":
                try:
                    return jwk_to_public_key(jwk), f"{jwk.get('kid', '')}:{jwk.get('n', '')[-16:]}"
                except ValueError as exc:
                    raise UpstreamError(f"The MCP credentials key is not usable: {exc}") from exc
        raise UpstreamError("The authorisation server offers no key to encrypt MCP credentials to.")


def mcp_servers_wire(
    servers: Sequence[str], credentials: Mapping[str, Mapping[str, str]], public_key: Any = None
) -> list[Any]:
    """`servers` as the request's `mcp_servers`: the SDK's wire form, and for each server with
    `credentials` a spec naming it, its values encrypted to `public_key` under its connection name."""
    wire: list[Any] = []
    for target, item in zip(servers, serialize_mcp_servers(list(servers)), strict=True):
        values = credentials.get(target)
        if not values:
            wire.append(item)
            continue
        spec = dict(item) if isinstance(item, dict) else ({"url": item} if "://" in item else {"slug": item})
        name = spec.get("slug") or spec.get("url")
        spec["name"] = name
        spec["credentials"] = {slug_to_connection_name(name): encrypt_credentials(public_key, dict(values))}
        wire.append(spec)
    return wire
