"""The stand-in's authorisation server: the JWKS that MCP credentials are encrypted to, and the other half,
which opens what a completion request carried so its log shows the values (tests compare them).

``GET /.well-known/jwks.json`` serves the public key; ``POST /_standin/jwks/rotate`` replaces the key
pair (a request still encrypted to the old key is then refused, as the real server would);
``GET /_standin/jwks`` says how often the JWKS was fetched. Free of Django, like the stand-in.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

import orjson
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENVELOPE_VERSION = 0x01
NONCE_LEN = 12


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CredentialsUnreadable(ValueError):
    """An envelope this server's key does not open."""


class AuthServer:
    """One RSA key pair, replaced on rotation, and how often its public half was fetched."""

    def __init__(self) -> None:
        self.kids = itertools.count(1)
        self.fetches = 0
        self.rotate()

    def rotate(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"standin-{next(self.kids)}"

    def jwks(self) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "enc",
                    "alg": "RSA-OAEP-256",
                    "kid": self.kid,
                    "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                    "e": _b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
                }
            ]
        }

    def open(self, envelope: str) -> Any:
        """The values inside one envelope: version, RSA-OAEP wrapped AES key, nonce, AES-GCM text."""
        try:
            raw = _b64url_decode(envelope)
            size = self.private_key.key_size // 8
            if raw[0] != ENVELOPE_VERSION:
                raise CredentialsUnreadable("unknown envelope version")
            wrapped, nonce, sealed = (
                raw[1 : 1 + size],
                raw[1 + size : 1 + size + NONCE_LEN],
                raw[1 + size + NONCE_LEN :],
            )
            aes_key = self.private_key.decrypt(
                wrapped,
                padding.OAEP(
                    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
                ),
            )
            return orjson.loads(AESGCM(aes_key).decrypt(nonce, sealed, None))
        except CredentialsUnreadable:
            raise
        except Exception as exc:  # any failure to open is the same answer: not for this key
            raise CredentialsUnreadable("credentials are not encrypted to this server's key") from exc

    def servers_opened(self, servers: Any) -> dict[str, dict[str, Any]]:
        """Each server spec's credentials, opened, by server name ({} when none carried any).
        Raise CredentialsUnreadable for one this key does not open."""
        opened: dict[str, dict[str, Any]] = {}
        for server in servers if isinstance(servers, list) else []:
            credentials = server.get("credentials") if isinstance(server, dict) else None
            if isinstance(credentials, dict) and credentials:
                name = str(server.get("name") or server.get("slug") or server.get("url"))
                opened[name] = {connection: self.open(str(blob)) for connection, blob in credentials.items()}
        return opened


AUTH_KEY = web.AppKey("standin_auth", AuthServer)


async def handle_jwks(request: web.Request) -> web.Response:
    server = request.app[AUTH_KEY]
    server.fetches += 1
    return web.Response(body=orjson.dumps(server.jwks()), content_type="application/json")


async def handle_rotate(request: web.Request) -> web.Response:
    server = request.app[AUTH_KEY]
    server.rotate()
    return web.Response(body=orjson.dumps({"kid": server.kid}), content_type="application/json")


async def handle_state(request: web.Request) -> web.Response:
    server = request.app[AUTH_KEY]
    return web.Response(
        body=orjson.dumps({"kid": server.kid, "fetches": server.fetches}), content_type="application/json"
    )


def auth_routes_add(app: web.Application) -> None:
    app[AUTH_KEY] = AuthServer()
    app.router.add_get("/.well-known/jwks.json", handle_jwks)
    app.router.add_post("/_standin/jwks/rotate", handle_rotate)
    app.router.add_get("/_standin/jwks", handle_state)
