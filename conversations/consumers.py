"""The chat WebSocket: parses frames, hands them to the relay, and sends back what it answers."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from . import protocol, relay
from .exceptions import ChatError
from .services import Owner

INVALID_SESSION_CLOSE_CODE = 4400


class ChatConsumer(AsyncWebsocketConsumer):
    """One browser tab or API client on one conversation (`/ws/chat/<session_id>/` or `/ws/<session_id>`)."""

    session_id: str = ""

    async def connect(self) -> None:
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        self.group = relay.conversation_group(self.session_id)
        await self.accept()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await relay.conversation_join(session_id=self.session_id, key=id(self), send=self.send_text)

    async def disconnect(self, code: int) -> None:
        if self.session_id:
            relay.conversation_leave(session_id=self.session_id, key=id(self))
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = protocol.parse_client_frame(text_data, bytes_data)
            await relay.client_frame_handle(
                session_id=self.session_id, owner=self.owner(), frame=frame, send=self.send_text
            )
        except ChatError as exc:
            await self.send_text(protocol.dumps(protocol.error_frame(exc.code, exc.message)))

    async def reply_started(self, event: dict[str, Any]) -> None:
        """Channel-layer event: another instance started a reply in this conversation."""
        await relay.reply_started_elsewhere(session_id=self.session_id, event=event)

    async def send_text(self, text: str) -> None:
        await self.send(text_data=text)

    def owner(self) -> Owner:
        """The user of the handshake, or the anonymous browser session that opened it."""
        user = self.scope.get("user")
        session = self.scope.get("session")
        return Owner(
            user_id=user.pk if user is not None and user.is_authenticated else None,
            session_key=(session.session_key or "") if session is not None else "",
        )


class InvalidSessionConsumer(AsyncWebsocketConsumer):
    """Any other path under /ws/: says why in one frame, then closes."""

    async def connect(self) -> None:
        await self.accept()
        await self.send(
            text_data=protocol.dumps(
                protocol.error_frame("invalid_session_id", "Session ids are 1 to 64 of A-Z a-z 0-9 _ -.")
            )
        )
        await self.close(code=INVALID_SESSION_CLOSE_CODE)
