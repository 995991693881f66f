"""A frame for a conversation's sockets from a process that serves none (a background job's worker): it
goes through the event bus as another instance's `room.frame` would (fanout.py), and every instance with
sockets on the conversation sends it to them.

Each call opens a Redis connection of its own and closes it: for a job's few progress events, not for a
stream of them.

Without Redis there is no bus between processes: the sockets live in the server's process alone, and the
frame is dropped (logged). So is it when Redis is down; a page sees the state at its next
history, as with any event the bus missed.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings

from .. import protocol
from ..owners import ConversationRef
from ..redisclient import redis_client
from .backends.eventbus import EventNotSent
from .instance import redis_event_bus

logger = logging.getLogger(__name__)


async def frame_send(ref: ConversationRef, frame: dict[str, Any]) -> bool:
    """Send `frame` to every socket of the conversation `ref`, on every instance; False when it could
    not go (no Redis, or Redis down)."""
    if not settings.REDIS_URL:
        logger.warning("frame not sent: without REDIS_URL no other process reaches the sockets")
        return False
    redis = redis_client(settings.REDIS_URL)
    bus = redis_event_bus(redis)
    # An origin no instance has, so every one with sockets on the conversation sends it on.
    event = {"type": "room.frame", "origin": f"outside-{uuid.uuid4().hex}", "room": ref.room_key}
    try:
        await bus.publish({**event, "frame": protocol.dumps(frame)})
    except EventNotSent:
        logger.warning("frame not sent: the event bus is down", extra={"room": ref.room_key}, exc_info=True)
        return False
    finally:
        await bus.close()
        await redis.aclose()
    return True


# For a job that runs in a thread (sync code, the ORM): the same, waited for.
frame_send_sync = async_to_sync(frame_send)
