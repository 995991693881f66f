"""The relay: what a chat socket does, from its first frame to its close. The consumer calls these
three and nothing else.

    socket_open   admit the socket and send it its conversation's history (or refuse it)
    frame_receive act on one client frame: a turn, a stop, a resync, a history page, a branch switch,
                  feedback
    socket_close  release what the socket holds, on every path out

Its modules, their order and its backends (`backends/`): docs/architecture.md, "The relay".
"""

from __future__ import annotations

from .. import metrics, protocol
from ..exceptions import ChatError, SessionExpired
from ..owners import LOGIN_REQUIRED_CLOSE_CODE, owner_still_valid
from . import sockets
from .chatsocket import ChatSocket, SocketGone
from .sockets import SocketRefusal, socket_close, socket_open
from .turns import branch_switch, feedback_give, reply_resend, reply_stop, turn_start

__all__ = ["ChatSocket", "SocketGone", "SocketRefusal", "frame_receive", "socket_close", "socket_open"]

# Refusals counted in the metrics by their code.
LIMIT_CODES = frozenset({"rate_limited", "quota_exceeded", "budget_exceeded"})


async def frame_receive(socket: ChatSocket, text_data: str | None, bytes_data: bytes | None) -> None:
    """Act on one frame from the client, while the socket's session stands. What cannot be done is told to
    the client as an `error` frame, on a socket that stays open (a socket whose session ended is then
    closed, 4401)."""
    if not socket.open:
        return  # closed by this server: nothing to do until the close lands
    try:
        await socket.instance.limits.frame_check(socket_id=socket.socket_id)
        # Every frame, not just a turn: after a logout or an expiry a socket must neither read (history,
        # a resync) nor write (feedback, a branch switch, a stop) as the session's owner.
        if not await owner_still_valid(socket.owner):
            raise SessionExpired()
        await _frame_handle(socket, protocol.parse_client_frame(text_data, bytes_data))
    except ChatError as exc:
        if exc.code in LIMIT_CODES:
            metrics.REFUSALS.labels(exc.code).inc()
        await socket.send(protocol.dumps(protocol.error_frame_of(exc)))
        if isinstance(exc, SessionExpired):
            await socket.close(LOGIN_REQUIRED_CLOSE_CODE)


async def _frame_handle(socket: ChatSocket, frame: protocol.ClientFrame) -> None:
    if isinstance(frame, protocol.StopFrame):
        await reply_stop(socket)
    elif isinstance(frame, protocol.ResyncFrame):
        await reply_resend(socket, message_id=frame.message_id, offset=frame.offset, part=frame.part)
    elif isinstance(frame, protocol.HistoryFrame):
        if frame.before is None:
            await sockets.history_send(socket)
        else:
            await sockets.history_page_send(socket, before=frame.before)
    elif isinstance(frame, protocol.SwitchFrame):
        await branch_switch(socket, message_id=frame.message_id)
    elif isinstance(frame, protocol.FeedbackFrame):
        await feedback_give(socket, frame)
    else:
        await turn_start(socket, frame)
