"""Chat sockets on the real ASGI application, in the test's own process, opened as the suite's anonymous
browser: its session, the handshake, and reading the frames of a reply."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from chatproject.asgi import application
from conversations.owners import Owner

ORIGIN = (b"origin", b"http://localhost")

# The one anonymous browser the suite's sockets come from unless a test says otherwise (the chat page's
# path refuses cookie-less sockets): its session is created on first use in each test.
BROWSER_SESSION_KEY = "suitebrowser0000000000000000000a"


def browser_owner_key() -> str:
    """The owner key of the suite's anonymous browser."""
    return Owner(session_key=BROWSER_SESSION_KEY).key


async def suite_browser_handshake_headers() -> list[tuple[bytes, bytes]]:
    """The handshake headers of the suite's anonymous browser: its origin and session cookie, the session
    stored in the test database first."""
    await Session.objects.aupdate_or_create(
        session_key=BROWSER_SESSION_KEY,
        defaults={
            "session_data": SessionStore().encode({}),
            "expire_date": timezone.now() + timedelta(days=1),
        },
    )
    return [ORIGIN, (b"cookie", f"{settings.SESSION_COOKIE_NAME}={BROWSER_SESSION_KEY}".encode())]


async def socket_open(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    """Connect a communicator to the real ASGI application (as the suite's browser unless `headers` say
    otherwise) and read its `history` frame."""
    communicator = WebsocketCommunicator(
        application, path, headers=headers or await suite_browser_handshake_headers()
    )
    connected, _ = await communicator.connect()
    assert connected
    history = await communicator.receive_json_from(timeout=5)
    assert history["type"] == "history"
    communicator.history = history  # type: ignore[attr-defined]
    return communicator


async def reply_collect(communicator: WebsocketCommunicator, wait: float = 10) -> list[dict[str, Any]]:
    """Read frames until the reply ends or the message is refused (`done` or `error`); return them all."""
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout=wait)
        frames.append(frame)
        if frame["type"] in ("done", "error"):
            return frames


def chunks_text(frames: list[dict[str, Any]]) -> str:
    return "".join(frame["content"] for frame in frames if frame["type"] == "chunk")
