"""The chat WebSocket: checks who is connecting, parses frames, hands them to the relay."""

from __future__ import annotations

import uuid

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import instance as instances
from . import metrics, protocol, relay, throttles
from .exceptions import ChatError, SessionExpired
from .logs import request_id_set
from .owners import LOGIN_REQUIRED_CLOSE_CODE, ConversationRef, Owner, socket_refusal

INVALID_SESSION_CLOSE_CODE = 4400
TOO_MANY_SOCKETS_CLOSE_CODE = 4429
LIMIT_CODES = frozenset({"rate_limited", "quota_exceeded"})


class ChatConsumer(AsyncWebsocketConsumer):
    """One browser tab or API client on one conversation (`/ws/chat/<session_id>/` or `/ws/<session_id>`).

    The conversation is the one with that id in the connecting owner's namespace, never another's.
    """

    ref: ConversationRef | None = None
    owner: Owner
    socket_id: str = ""

    async def connect(self) -> None:
        self.owner = Owner.from_scope(self.scope)
        await self.accept()
        refusal = socket_refusal(self.owner, self.scope["url_route"]["kwargs"]["path_kind"])
        if refusal is not None:
            await self.close(code=refusal)  # no frame of data before it
            return
        instance = await instances.instance_get()
        socket_id = uuid.uuid4().hex
        if not await throttles.socket_admit(instance=instance, owner_key=self.owner.key, socket_id=socket_id):
            metrics.REFUSALS.labels("too_many_sockets").inc()
            limit = settings.CHAT_MAX_SOCKETS_PER_OWNER
            message = f"At most {limit} open chat sockets per user; close a tab and retry."
            await self.send_text(protocol.dumps(protocol.error_frame("too_many_sockets", message)))
            await self.close(code=TOO_MANY_SOCKETS_CLOSE_CODE)
            return
        self.socket_id = socket_id
        relay.sockets_open[socket_id] = self.owner.key
        metrics.OPEN_SOCKETS.inc()
        request_id_set(f"ws-{socket_id[:12]}")  # this socket's log lines, and its replies', carry it
        self.ref = ConversationRef(self.owner.key, self.scope["url_route"]["kwargs"]["session_id"])
        await relay.conversation_join(ref=self.ref, key=id(self), send=self.send_text)

    async def disconnect(self, code: int) -> None:
        if self.socket_id:
            relay.sockets_open.pop(self.socket_id, None)
            metrics.OPEN_SOCKETS.dec()
            instance = await instances.instance_get()
            await throttles.socket_release(
                instance=instance, owner_key=self.owner.key, socket_id=self.socket_id
            )
        if self.ref is not None:
            relay.conversation_leave(ref=self.ref, key=id(self))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.ref is None:
            return  # refused at connect; nothing to do until the close lands
        try:
            frame = protocol.parse_client_frame(text_data, bytes_data)
            await relay.client_frame_handle(ref=self.ref, owner=self.owner, frame=frame, send=self.send_text)
        except ChatError as exc:
            if exc.code in LIMIT_CODES:
                metrics.REFUSALS.labels(exc.code).inc()
            await self.send_text(protocol.dumps(protocol.error_frame(exc.code, exc.message, **exc.details)))
            if isinstance(exc, SessionExpired):
                await self.close(code=LOGIN_REQUIRED_CLOSE_CODE)

    async def send_text(self, text: str) -> None:
        await self.send(text_data=text)


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
