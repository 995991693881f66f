"""Errors a chat client sees: one class per error code.

The codes are a contract: clients branch on them (the page, API clients, the tests), so a code is never
renamed nor given another meaning, and a new code is a new class here (and in the README's list, under
the `error` frame). The text beside a code is for people: a class carries its usual text
(`default_detail`), and a raiser passes another when it has more to say, such as the limit that was hit.
"""

from __future__ import annotations


class ChatError(Exception):
    """An error the client sees: `code` to branch on, `message` for people, and `details` sent beside
    them (e.g. `retry_after`). `ChatError()` is an internal error; raise a subclass, which names its code.

    `Busy()` says the class's default text, `Busy("…")` another; keyword arguments are the details.
    """

    default_code = "internal_error"
    default_detail = "The server failed on that frame; try again."

    def __init__(self, detail: str | None = None, **details: object) -> None:
        message = self.default_detail if detail is None else detail
        super().__init__(message)
        self.code, self.message, self.details = self.default_code, message, details


class InvalidJson(ChatError):
    """A frame that is not a JSON object in a text message."""

    default_code = "invalid_json"
    default_detail = "Frames must be JSON objects."


class InvalidMessage(ChatError):
    """A frame, or a message in it, that is not valid, or that names no message of the conversation."""

    default_code = "invalid_message"
    default_detail = "That is not a valid message."


class EmptyMessage(InvalidMessage):
    default_detail = "The message is empty."


class NoSuchMessage(InvalidMessage):
    """A message id that is not one of the owner's conversation (another owner's looks the same)."""

    default_detail = "No such message in this conversation."


class NoSuchReply(InvalidMessage):
    default_detail = "No such reply in this conversation."


class MessageTooLong(ChatError):
    """A message over CHAT_MAX_MESSAGE_CHARS, or a frame over CHAT_MAX_FRAME_BYTES."""

    default_code = "message_too_long"
    default_detail = "The message is too long."


class UnknownModel(ChatError):
    """A model that is not an enabled ChatModel (or no model enabled at all)."""

    default_code = "unknown_model"
    default_detail = "That model is not available."


class UnknownAgent(ChatError):
    """An agent slug that names no enabled Agent."""

    default_code = "unknown_agent"
    default_detail = "That agent is not available."


class InvalidMcpServer(ChatError):
    """An MCP server that is not a slug or an https URL, an internal host not offered, or too many."""

    default_code = "invalid_mcp_server"
    default_detail = "That MCP server is not allowed."


class InvalidSettings(ChatError):
    """Reply settings that are not settings, out of range or beyond the model's limits, or asked of an
    agent that keeps its own."""

    default_code = "invalid_settings"
    default_detail = "Those settings are not valid."


class AttachmentRefused(ChatError):
    """An upload that is not kept (nothing of it is stored); `status` is the HTTP answer's."""

    default_code = "attachment_refused"
    default_detail = "That file cannot be attached."
    status = 400


class AttachmentTooLarge(AttachmentRefused):
    default_code = "attachment_too_large"
    default_detail = "That file is too large."
    status = 413


class RequestTooLarge(ChatError):
    """An HTTP request whose body is over CHAT_REQUEST_MAX_BYTES (uploads: see AttachmentTooLarge)."""

    default_code = "request_too_large"
    default_detail = "That request is too large."
    status = 413


class AttachmentQuotaExceeded(AttachmentRefused):
    default_code = "attachment_quota_exceeded"
    default_detail = "Your attachments use all the storage you have; delete some conversations first."
    status = 413


class AttachmentRateLimited(AttachmentRefused):
    """Over an upload rate or byte allowance per client address; with `retry_after`, the seconds until
    one more is counted."""

    default_code = "attachment_rate_limited"
    default_detail = "Too many uploads from your address; try again later."
    status = 429


class AttachmentStorageFull(AttachmentRefused):
    """The uploads no message has named yet fill their budget (CHAT_UNSENT_UPLOADS_MAX_BYTES) on the
    whole server; with `retry_after`, the seconds until the oldest of them is swept."""

    default_code = "attachment_storage_full"
    default_detail = "The server takes no more uploads for now; try again later."
    status = 503


class AttachmentsBusy(AttachmentRefused):
    """Every upload worker stayed busy for CHAT_UPLOAD_WAIT_SECONDS; with `retry_after`."""

    default_code = "attachments_busy"
    default_detail = "The server is reading other files; try again in a few seconds."
    status = 503


class AttachmentUnsupported(AttachmentRefused):
    """A file of a type we do not take, whatever its name says."""

    default_code = "attachment_type_unsupported"
    default_detail = "Only images (PNG, JPEG, GIF, WebP), PDFs and UTF-8 text or code files can be attached."
    status = 415


class AttachmentMisnamed(AttachmentRefused):
    """A file whose name (or the browser's declared type) claims a kind its content is not: an HTML page
    named `photo.png`. Kept, it would be shown under a name that lies about it."""

    default_code = "attachment_type_mismatch"
    default_detail = "That file's name says it is another kind of file than it is."
    status = 415


class AttachmentUnreadable(AttachmentRefused):
    """A file of a type we take that cannot be read safely: damaged, encrypted, too many pixels or pages."""

    default_code = "attachment_unreadable"
    default_detail = "That file cannot be read."
    status = 422


class InvalidAttachment(ChatError):
    """An attachment id in a frame that is not one of the sender's uploads (or no longer exists)."""

    default_code = "invalid_attachment"
    default_detail = "That attachment does not exist."


class UnsupportedAttachment(ChatError):
    """An attachment the model that would answer cannot read (an image for a model without vision)."""

    default_code = "unsupported_attachment"
    default_detail = "The chosen model cannot read that attachment."


class McpCredentialsRequired(ChatError):
    """An MCP server whose preset asks each user for their own credentials, and the sender has none
    (or is not signed in)."""

    default_code = "mcp_credentials_required"
    default_detail = "That MCP server needs your credentials: add them beside it first."


class Busy(ChatError):
    """A reply of the conversation is still streaming: nothing else may start or change it."""

    default_code = "busy"
    default_detail = "A reply is still being written in this conversation; wait or stop it."


class TooManyReplies(ChatError):
    """The owner has CHAT_MAX_REPLIES_PER_OWNER replies streaming, in any conversation."""

    default_code = "too_many_replies"
    default_detail = "Too many replies at once; wait for one to end or stop it."


class QuotaExceeded(ChatError):
    """The owner used their daily token quota; with `retry_after`, the seconds until it renews."""

    default_code = "quota_exceeded"
    default_detail = "The daily token quota is used up; it renews at midnight UTC."


class RateLimited(ChatError):
    """Over a message or frame rate; with `retry_after`, the seconds until one more is counted."""

    default_code = "rate_limited"
    default_detail = "Too many messages; try again later."


class ShareTooLarge(ChatError):
    """A snapshot over CHAT_SHARE_MAX_MESSAGES or CHAT_SHARE_MAX_BYTES: not shared, or not continued."""

    default_code = "share_too_large"
    default_detail = "This chat is too long to share."


class TooManySockets(ChatError):
    """The owner has CHAT_MAX_SOCKETS_PER_OWNER chat sockets open (the socket is then closed)."""

    default_code = "too_many_sockets"
    default_detail = "Too many open chat sockets; close a tab and retry."


class SessionExpired(ChatError):
    """The session a socket connected with has ended (logout, expiry): it may start no more turns."""

    default_code = "session_expired"
    default_detail = "Your session has ended; reload the page to sign in again."


class InvalidSessionId(ChatError):
    """A socket path whose conversation id is not one (the socket is then closed)."""

    default_code = "invalid_session_id"
    default_detail = "Session ids are 1 to 64 of A-Z a-z 0-9 _ -."


class NotConfigured(ChatError):
    """The server has no API key for the model service."""

    default_code = "not_configured"
    default_detail = "The server has no DEDALUS_API_KEY; ask its operator to set one."


class Unavailable(ChatError):
    """This instance cannot do it now (it is shutting down, or the database or another instance did not
    answer): the client retries, ideally on another instance."""

    default_code = "unavailable"
    default_detail = "The server is unavailable; try again in a moment."


class InternalError(ChatError):
    """The server failed; the base's code and text."""


class UpstreamError(ChatError):
    """The Dedalus API answered with an error or broke the stream: `upstream_error`, or
    `upstream_timeout` when it was too slow."""

    default_code = "upstream_error"
    default_detail = "The model service failed."

    def __init__(
        self,
        message: str,
        *,
        code: str = "upstream_error",
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retryable, self.retry_after = retryable, retry_after
        self.status = status  # the HTTP status the upstream answered, when it answered one
