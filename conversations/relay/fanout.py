"""A frame for every socket of a conversation, on every instance: the sockets here at once, the other
instances' through the event bus (`room.frame`, broadcast by cluster.py where they have sockets)."""

from __future__ import annotations

from typing import Any

from .. import protocol
from ..owners import ConversationRef
from .instance import Instance


async def frame_fan_out(instance: Instance, ref: ConversationRef, frame: dict[str, Any]) -> None:
    """Send `frame` to every socket of the conversation `ref`. Sockets on other instances miss it when
    the event bus is down (their next history carries the same state)."""
    text = protocol.dumps(frame)
    room = instance.rooms.find(ref)
    if room is not None:
        await room.broadcast(text)
    await instance.announce("room.frame", ref.room_key, frame=text)
