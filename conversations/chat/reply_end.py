"""How a reply ended, as one value: what its row stores (replies.reply_finish) and what its end frame
says, whether the reply task just ended it or a reader rebuilds it from the stored row."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .. import protocol
from ..models import Message

INTERNAL_ERROR_TEXT = "The server failed while writing this reply."


@dataclass(frozen=True, slots=True)
class ReplyEnd:
    """A reply's end: its status and finish reason, its token usage (`usage_estimated` when the upstream
    reported none and the text streamed was counted instead), the error that ended it (with the seconds
    to wait before trying again, when the upstream said; not stored: only the live frame says it), the models
    that wrote it with where each after the first took over, how long the model thought (None: it
    did not, as far as its stream and usage say), and the API client's tools it called (a complete
    reply's, in OpenAI's shape)."""

    status: str
    finish_reason: str = ""
    usage: dict[str, int] | None = None
    usage_estimated: bool = False
    error_code: str = ""
    error: str = ""
    retry_after: int | None = None
    served_models: tuple[str, ...] = ()
    handoff_offsets: tuple[int, ...] = ()
    reasoning_ms: int | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()

    @property
    def failed(self) -> bool:
        return self.status == Message.Status.ERROR

    @property
    def usage_reported(self) -> dict[str, int]:
        """The usage the upstream reported ({} when it reported none and this end carries an estimate)."""
        return {} if self.usage_estimated or self.usage is None else self.usage

    def failed_internally(self) -> ReplyEnd:
        """This end, turned into the server's own failure: no usage, the same models."""
        return replace(
            self,
            status=Message.Status.ERROR,
            finish_reason="error",
            usage=None,
            usage_estimated=False,
            error_code="internal_error",
            error=INTERNAL_ERROR_TEXT,
            retry_after=None,
            tool_calls=(),
        )

    def frame(self, message_id: int) -> dict[str, Any]:
        """The frame that ends reply `message_id` on every socket: `error`, or `done`."""
        if self.failed:
            extra = {} if self.retry_after is None else {"retry_after": self.retry_after}
            return protocol.error_frame(self.error_code, self.error, message_id=message_id, **extra)
        return protocol.done_frame(
            message_id=message_id,
            usage=self.usage,
            finish_reason=self.finish_reason,
            served_models=self.served_models,
            handoff_offsets=self.handoff_offsets,
            reasoning_ms=self.reasoning_ms,
            tool_calls=self.tool_calls,
        )

    @classmethod
    def stored(cls, message: Message) -> ReplyEnd:
        """The end a reply's stored row says (a row with no finish reason reads as interrupted, a failed
        one with no code as an upstream error)."""
        failed = message.status == Message.Status.ERROR
        return cls(
            status=message.status,
            finish_reason=message.finish_reason or "interrupted",
            usage=message.usage,
            error_code=(message.error_code or "upstream_error") if failed else message.error_code,
            error=message.error,
            served_models=tuple(message.served_models),
            handoff_offsets=tuple(message.handoff_offsets),
            reasoning_ms=message.reasoning_ms,
            tool_calls=tuple(message.tool_calls),
        )
