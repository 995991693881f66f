"""The chat WebSocket: says who is connecting, parses frames, hands them to the relay."""

from __future__ import annotations

import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.utils import await_many_dispatch

from . import protocol, relay
from .exceptions import InternalError, InvalidSessionId

logger = logging.getLogger(__name__)

INVALID_SESSION_CLOSE_CODE = 4400
INTERNAL_ERROR_CLOSE_CODE = 1011


class ChatConsumer(AsyncWebsocketConsumer):
    """One browser tab or API client on one conversation (`/ws/chat/<session_id>/` or `/ws/<session_id>`).

    The conversation is the one with that id in the connecting owner's namespace, never another's.
    One call opens the socket (`relay.socket_open`) and one, on every path out, closes it.
    """

    socket: relay.ChatSocket | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # No channel-layer channel: replies reach a socket through the relay's rooms, so the socket listens
        # to its client alone and a Redis outage cannot end it (a layer's receive raises when Redis goes).
        self.scope, self.channel_layer, self.base_send = scope, None, send
        try:
            await await_many_dispatch([receive], self.dispatch)
        except StopConsumer:
            pass
        finally:
            # Channels never calls disconnect() after a handler raised: release here, on every path.
            if self.socket is not None:
                await relay.socket_close(self.socket)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Run a handler; an unexpected error is logged with its traceback and told to the client as
        `internal_error`, on a socket that stays open (one that failed to open is closed)."""
        try:
            handler = getattr(self, get_handler_name(message), None)
            if handler is None:
                raise ValueError(f"No handler for message type {message['type']}")
            # Not super().dispatch(): Channels closes stale database connections before every handler,
            # a hop to its one sync thread per frame (a sixth of the event loop's time under 100
            # streams). This consumer reaches the database only through the relay's service calls,
            # whose worker threads close their own connections.
            await handler(message)
        except StopConsumer:
            raise
        except relay.SocketGone:
            return  # this server closed the socket (a failed send, a client not reading): nothing to tell
        except Exception:
            logger.exception("socket handler failed", extra={"event": message.get("type")})
            frame = protocol.error_frame_of(InternalError())
            try:
                await self.send(text_data=protocol.dumps(frame))
                if message.get("type") == "websocket.connect":
                    await self.close(code=INTERNAL_ERROR_CLOSE_CODE)
            except Exception:  # the socket is gone too: nothing more to tell it
                logger.debug("could not report the failure to the socket", exc_info=True)

    async def connect(self) -> None:
        await self.accept()
        opened = await relay.socket_open(
            self.scope, send=self.send_text, close=self.close, transport_send=self.base_send
        )
        if isinstance(opened, relay.SocketRefusal):
            if opened.frame:
                await self.send_text(opened.frame)
            await self.close(code=opened.close_code)
        else:
            self.socket = opened

    async def disconnect(self, code: int) -> None:
        if self.socket is not None:
            await relay.socket_close(self.socket)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.socket is not None:  # None: refused at connect, nothing to do until the close lands
            await relay.frame_receive(self.socket, text_data, bytes_data)

    async def send_text(self, text: str) -> None:
        await self.send(text_data=text)


class InvalidSessionConsumer(AsyncWebsocketConsumer):
    """Any other path under /ws/: says why in one frame, then closes."""

    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data=protocol.dumps(protocol.error_frame_of(InvalidSessionId())))
        await self.close(code=INVALID_SESSION_CLOSE_CODE)
