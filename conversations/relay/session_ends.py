"""Sockets end with their session. A logout, wherever it happens (the chat's page, the admin's), is
published to every instance, which closes that session's sockets at once (`session_expired`, 4401); a
session that expired or was purged, or a logout whose event was lost, is found by each instance's sweep
every CHAT_SOCKET_SESSION_CHECK_SECONDS; and every frame checks its socket's session before acting
(`frame_receive`), so nothing is read or written in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

import orjson
import redis
from django.conf import settings
from redis.exceptions import RedisError

from .. import protocol
from ..exceptions import SessionExpired
from ..owners import LOGIN_REQUIRED_CLOSE_CODE, owners_whose_session_ended, session_key_digest
from ..redisclient import redis_client_options
from .backends import channels_bus
from .backends.eventbus import events_channel
from .chatsocket import ChatSocket, SocketGone
from .dbcall import db_call
from .instance import instances_started
from .sockets import socket_close

if TYPE_CHECKING:
    from .instance import Instance

logger = logging.getLogger(__name__)

SESSION_ENDED_EVENT = "session.ended"

_publisher: redis.Redis | None = None
_publisher_lock = threading.Lock()


def session_ended_publish(session_key: str) -> None:
    """Tell every instance that this browser session has ended (from the HTTP side: a sync view).

    With Redis the event is one PUBLISH on the instances' event channel (or group: CHAT_EVENT_BUS);
    without, there is one process, and its instances get it on their own event loops. A failure is
    logged: the sockets still close at their next frame, or at the sweep."""
    if not session_key:
        return
    event = {"type": SESSION_ENDED_EVENT, "origin": "http", "session": session_key_digest(session_key)}
    if not settings.REDIS_URL:
        for loop, instance in instances_started():
            with contextlib.suppress(RuntimeError):  # its loop closed since: nothing left to close there
                loop.call_soon_threadsafe(_dispatch_soon, instance, event)
        return
    try:
        if settings.CHAT_EVENT_BUS == "channels-redis":
            channels_bus.publish_blocking(event)
        else:
            _publisher_get().publish(events_channel(), orjson.dumps(event))
    except (RedisError, OSError):
        logger.warning("session end not published; its sockets close at their next frame", exc_info=True)


def _dispatch_soon(instance: Instance, event: dict[str, Any]) -> None:
    instance.reply_task_start(instance._event_dispatch(event), name="session-ended")


def _publisher_get() -> redis.Redis:
    global _publisher
    with _publisher_lock:
        if _publisher is None:
            _publisher = redis.Redis.from_url(settings.REDIS_URL, **redis_client_options())
        return _publisher


async def session_sockets_close(instance: Instance, digest: str) -> None:
    """Close every socket of this instance that came with the session of this digest."""
    await _sockets_close(instance.by_session.of(digest))


async def _sockets_close(sockets: list[ChatSocket]) -> None:
    frame = protocol.dumps(protocol.error_frame_of(SessionExpired()))
    for socket in sockets:
        if not socket.admitted:
            continue  # let go meanwhile (its client left): nothing to close
        with contextlib.suppress(SocketGone):  # closed already: nothing to tell
            await socket.send(frame)
        await socket.close(LOGIN_REQUIRED_CLOSE_CODE)
        await socket_close(socket)  # out of its room now: not one more frame of the conversation


async def sessions_sweep(instance: Instance) -> None:
    """Close the sockets whose session no longer stands (expired, purged, or a logout not heard of), at
    most every CHAT_SOCKET_SESSION_CHECK_SECONDS: one read of the session store for all of them."""
    now = asyncio.get_running_loop().time()
    if now < instance.by_session.next_sweep:
        return
    instance.by_session.next_sweep = now + settings.CHAT_SOCKET_SESSION_CHECK_SECONDS
    sockets_of: dict[Any, list[ChatSocket]] = dict(instance.by_session.owners())
    if not sockets_of:
        return
    ended = await db_call(owners_whose_session_ended)(owners=list(sockets_of))
    for owner in ended:
        await _sockets_close(sockets_of[owner])
