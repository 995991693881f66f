"""Secrets at rest: MCP credentials are stored sealed with Fernet (AES-CBC + HMAC, from `cryptography`).

CHAT_CREDENTIALS_KEYS lists Fernet keys, newest first: the first seals, every one opens, so a key is
rotated by putting a new one in front, running `manage.py credentials_reseal`, then dropping the old.
Without the setting (local development only) the key is derived from SECRET_KEY.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SealBroken(ValueError):
    """A sealed value no configured key opens (its key was dropped) or that was tampered with."""


@functools.cache
def _keyring(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        derived = hashlib.sha256(b"chat-credentials:" + secret_key.encode()).digest()
        keys = (base64.urlsafe_b64encode(derived).decode(),)
    return MultiFernet([Fernet(key) for key in keys])


def keyring() -> MultiFernet:
    """The keys of CHAT_CREDENTIALS_KEYS (or the one derived from SECRET_KEY), newest first."""
    return _keyring(tuple(settings.CHAT_CREDENTIALS_KEYS), settings.SECRET_KEY)


def seal(values: dict[str, Any]) -> str:
    """`values` as JSON, encrypted and authenticated with the newest key."""
    return keyring().encrypt(orjson.dumps(values)).decode()


def unseal(token: str) -> dict[str, Any]:
    """The values `seal` was given. Raise SealBroken when no key opens `token`."""
    try:
        return orjson.loads(keyring().decrypt(token.encode()))
    except InvalidToken as exc:
        raise SealBroken("No key in CHAT_CREDENTIALS_KEYS opens these credentials.") from exc


def reseal(token: str) -> str:
    """`token` sealed again with the newest key (key rotation). Raise SealBroken as `unseal`."""
    try:
        return keyring().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SealBroken("No key in CHAT_CREDENTIALS_KEYS opens these credentials.") from exc
