"""Errors a client sees: one class per error code.

The codes are a contract: clients branch on them (the page, API clients, the tests), so a code is never
renamed nor given another meaning, and a new code is a new class here (and in docs/protocol.md's list,
under the `error` frame, or beside the HTTP API that answers it in docs/). A class says what it is in
its header: `code`, the HTTP `status` it is answered with (as Django REST framework's exceptions carry
theirs; a socket's `error` frame has none) and its usual text, `detail`. A subclass keeps what it
does not name. The text is for people: a raiser passes another when it has more to say, such as the
limit that was hit.
"""

from __future__ import annotations

import math
from typing import Any


class ChatError(Exception):
    """An error the client sees: `code` to branch on, `message` for people, and `details` sent beside
    them (e.g. `retry_after`). `ChatError()` is an internal error; raise a subclass, which names its code.

    `Busy()` says the class's default text, `Busy("…")` another; keyword arguments are the details.
    """

    default_code = "internal_error"
    default_detail = "The server failed on that frame; try again."
    status_code = 500

    def __init_subclass__(
        cls, *, code: str | None = None, status: int | None = None, detail: str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.default_code = code
        if status is not None:
            cls.status_code = status
        if detail is not None:
            cls.default_detail = detail

    def __init__(self, detail: str | None = None, **details: object) -> None:
        message = self.default_detail if detail is None else detail
        super().__init__(message)
        self.code, self.message, self.details = self.default_code, message, details


class InvalidJson(ChatError, code="invalid_json", status=400, detail="Frames must be JSON objects."):
    """A frame that is not a JSON object in a text message."""


class InvalidMessage(ChatError, code="invalid_message", status=400, detail="That is not a valid message."):
    """A frame, or a message in it, that is not valid, or that names no message of the conversation."""


class EmptyMessage(InvalidMessage, detail="The message is empty."):
    """A message with no text and no attachment."""


class NoSuchMessage(InvalidMessage, detail="No such message in this conversation."):
    """A message id that is not one of the owner's conversation (another owner's looks the same)."""


class NoSuchReply(InvalidMessage, detail="No such reply in this conversation."):
    """A reply id to regenerate, or to give feedback on, that is not a reply of the owner's conversation."""


class MessageTooLong(ChatError, code="message_too_long", status=400, detail="The message is too long."):
    """A message over CHAT_MAX_MESSAGE_CHARS, or a frame over CHAT_MAX_FRAME_BYTES."""


class UnknownModel(ChatError, code="unknown_model", status=400, detail="That model is not available."):
    """A model that is not an enabled ChatModel (or no model enabled at all)."""


class UnknownAgent(ChatError, code="unknown_agent", status=400, detail="That agent is not available."):
    """An agent slug that names no enabled Agent."""


class InvalidAgent(ChatError, code="invalid_agent", status=400, detail="That agent is not valid."):
    """A user's own agent to save that breaks a rule (a field missing, too long or out of range, a model
    not offered, an MCP server not allowed), named by its field; nothing is stored."""


class TooManyAgents(
    ChatError, code="too_many_agents", status=409, detail="You have as many agents as you may keep."
):
    """A user's own agent past CHAT_USER_AGENTS_MAX: delete one first."""


class UserAgentsOff(
    ChatError, code="user_agents_off", status=403, detail="This server does not let users build agents."
):
    """CHAT_USER_AGENTS is off: the operator's agents only."""


class InvalidMcpServer(
    ChatError, code="invalid_mcp_server", status=400, detail="That MCP server is not allowed."
):
    """An MCP server that is not a slug or an https URL, an internal host not offered, or too many."""


class InvalidSettings(ChatError, code="invalid_settings", status=400, detail="Those settings are not valid."):
    """Reply settings that are not settings, out of range or beyond the model's limits, or asked of an
    agent that keeps its own."""


class AttachmentRefused(
    ChatError, code="attachment_refused", status=400, detail="That file cannot be attached."
):
    """An upload that is not kept (nothing of it is stored)."""


class AttachmentTooLarge(
    AttachmentRefused, code="attachment_too_large", status=413, detail="That file is too large."
):
    """A file over CHAT_ATTACHMENT_MAX_BYTES, or an upload request over it with its envelope."""


class RequestTooLarge(ChatError, code="request_too_large", status=413, detail="That request is too large."):
    """An HTTP request whose body is over CHAT_REQUEST_MAX_BYTES (uploads: see AttachmentTooLarge)."""


class AttachmentQuotaExceeded(
    AttachmentRefused,
    code="attachment_quota_exceeded",
    status=413,
    detail="Your attachments use all the storage you have; delete some conversations first.",
):
    """The owner's attachments would pass CHAT_ATTACHMENT_QUOTA_BYTES."""


class AttachmentRateLimited(
    AttachmentRefused,
    code="attachment_rate_limited",
    status=429,
    detail="Too many uploads from your address; try again later.",
):
    """Over an upload rate or byte allowance per client address; with `retry_after`, the seconds until
    one more is counted."""


class AttachmentStorageFull(
    AttachmentRefused,
    code="attachment_storage_full",
    status=503,
    detail="The server takes no more uploads for now; try again later.",
):
    """The uploads no message has named yet fill their budget (CHAT_UNSENT_UPLOADS_MAX_BYTES) on the
    whole server; with `retry_after`, the seconds until the oldest of them is swept."""


class AttachmentsBusy(
    AttachmentRefused,
    code="attachments_busy",
    status=503,
    detail="The server is reading other files; try again in a few seconds.",
):
    """Every upload worker stayed busy for CHAT_UPLOAD_WAIT_SECONDS; with `retry_after`."""


class AttachmentUnsupported(
    AttachmentRefused,
    code="attachment_type_unsupported",
    status=415,
    detail="Only images (PNG, JPEG, GIF, WebP), PDFs and UTF-8 text or code files can be attached.",
):
    """A file of a type we do not take, whatever its name says."""


class AttachmentMisnamed(
    AttachmentRefused,
    code="attachment_type_mismatch",
    status=415,
    detail="That file's name says it is another kind of file than it is.",
):
    """A file whose name (or the browser's declared type) claims a kind its content is not: an HTML page
    named `photo.png`. Kept, it would be shown under a name that lies about it."""


class AttachmentUnreadable(
    AttachmentRefused, code="attachment_unreadable", status=422, detail="That file cannot be read."
):
    """A file of a type we take that cannot be read safely: damaged, encrypted, too many pixels or pages."""


class InvalidAttachment(
    ChatError, code="invalid_attachment", status=400, detail="That attachment does not exist."
):
    """An attachment id in a frame that is not one of the sender's uploads (or no longer exists), or an
    upload that could not be read."""


class UnsupportedAttachment(
    ChatError,
    code="unsupported_attachment",
    status=400,
    detail="The chosen model cannot read that attachment.",
):
    """An attachment the model that would answer cannot read (an image for a model without vision)."""


class McpCredentialsRequired(
    ChatError,
    code="mcp_credentials_required",
    status=403,
    detail="That MCP server needs your credentials: add them beside it first.",
):
    """An MCP server whose preset asks each user for their own credentials, and the sender has none
    (or is not signed in)."""


class InvalidCredentials(
    ChatError, code="invalid_credentials", status=400, detail='Send {"values": {name: value}}.'
):
    """MCP credentials to save that are not `{"values": {name: value}}`, or not the preset's names."""


class Busy(
    ChatError,
    code="busy",
    status=409,
    detail="A reply is still being written in this conversation; wait or stop it.",
):
    """A reply of the conversation is still streaming: nothing else may start or change it."""


class TooManyReplies(
    ChatError,
    code="too_many_replies",
    status=429,
    detail="Too many replies at once; wait for one to end or stop it.",
):
    """The owner has CHAT_MAX_REPLIES_PER_OWNER replies streaming, in any conversation."""


class QuotaExceeded(
    ChatError,
    code="quota_exceeded",
    status=429,
    detail="The daily token quota is used up; it renews at midnight UTC.",
):
    """The owner used their daily token quota; with `retry_after`, the seconds until it renews."""


class BudgetExceeded(
    ChatError,
    code="budget_exceeded",
    status=429,
    detail="Your budget for this period is spent.",
):
    """The user's budget, their own or their groups' (teams/budgets.py), is spent for its period; with
    `resets_at`, the ISO 8601 UTC time its period ends, and `retry_after`, the seconds until then."""


class RateLimited(ChatError, code="rate_limited", status=429, detail="Too many messages; try again later."):
    """Over a message or frame rate; with `retry_after`, the seconds until one more is counted."""


class BadRequest(ChatError, code="bad_request", status=400, detail="That request could not be read."):
    """An HTTP request Django could not parse (under /api/; see web/errors.py)."""


class NotFound(ChatError, code="not_found", status=404, detail=""):
    """Nothing the requester may reach by that name. Another owner's conversation answers exactly as a
    missing one, with the code alone (an empty text is not sent)."""


class InviteUnusable(
    ChatError, code="invite_unusable", status=410, detail="This invitation was used already, or it expired."
):
    """An invitation's link that was used or expired (an unknown one answers NotFound)."""


class PasswordAccountsOff(
    ChatError,
    code="password_accounts_off",
    status=410,
    detail="Password sign-in is off on this server: people sign in through single sign-on.",
):
    """CHAT_PASSWORD_LOGIN is off: an account whose only way in is a password is not made."""


class UsernameTaken(ChatError, code="username_taken", status=409, detail="That username is taken."):
    """A new account's username that another account has, found as the account is made."""


class SignUpsFull(
    ChatError,
    code="signups_full",
    status=503,
    detail="Too many sign-ups are waiting for approval; try again in a few days.",
):
    """CHAT_SIGNUP_PENDING_MAX sign-ups wait for an operator already."""


class LoginRequired(ChatError, code="login_required", status=401, detail="Sign in first."):
    """CHAT_REQUIRE_LOGIN is on (or the thing asked is a user's own) and the requester is not signed in."""


class InvalidApiKey(
    ChatError,
    code="invalid_api_key",
    status=401,
    detail="Incorrect API key provided: send a key of yours as Authorization: Bearer <key>.",
):
    """An API request with no key, or one that is malformed, unknown, revoked, expired, or whose user may
    no longer sign in (docs/openai-api.md)."""


class InvalidApiKeyRequest(
    ChatError, code="invalid_api_key_request", status=400, detail="That is not a valid API key request."
):
    """A key to create whose name or expiry breaks a rule, named by its field; nothing is stored."""


class TooManyApiKeys(
    ChatError, code="too_many_api_keys", status=409, detail="You have as many API keys as you may keep."
):
    """A user's key past CHAT_API_KEYS_PER_USER (an expired key counts until it is revoked): revoke one
    first."""


class MethodNotAllowed(
    ChatError, code="method_not_allowed", status=405, detail="That method is not allowed here."
):
    """An API path asked with a method it does not answer."""


class InvalidCompletionRequest(
    ChatError, code="invalid_request", status=400, detail="That is not a valid chat completion request."
):
    """A chat completion request that is not JSON or breaks the schema; `param` names the field."""


class UnsupportedParameter(
    ChatError, code="unsupported_parameter", status=400, detail="That parameter is not supported."
):
    """A chat completion parameter outside the allowlist (never forwarded silently); `param` names it."""


class ModelNotFound(ChatError, code="model_not_found", status=404, detail="That model does not exist."):
    """A chat completion's `model` that names no agent or model the key's user may use."""


class ModelNotAllowed(
    ChatError, code="model_not_allowed", status=403, detail="This API key may not use that model."
):
    """A chat completion's `model` the user may use but the key's scope leaves out."""


class ConversationNotFound(
    ChatError, code="conversation_not_found", status=404, detail="No API conversation of yours has that id."
):
    """An X-Conversation-Id that names none of the key's user's API conversations."""


class UploadLoginRequired(LoginRequired, status=403):
    """An upload refused for want of a sign-in: 403, as a cookie-less client's upload is."""


class SessionRequired(
    ChatError,
    code="session_required",
    status=403,
    detail="That needs a signed-in user or a browser session.",
):
    """A cookie-less client asked for what only a user or a browser session has: the public namespace
    is nobody's to browse."""


class InvalidOffset(ChatError, code="invalid_offset", status=400, detail="That offset is not valid."):
    """A conversation list's `offset` that is not a whole number in range."""


class InvalidSource(ChatError, code="invalid_source", status=400, detail="That source is not valid."):
    """A conversation list's `source` that is neither `page` nor `api`."""


class InvalidPin(
    ChatError, code="invalid_pin", status=400, detail='Send {"pinned": true} or {"pinned": false}.'
):
    """A pin that is not `{"pinned": bool}`."""


class ShareTooLarge(ChatError, code="share_too_large", status=413, detail="This chat is too long to share."):
    """A snapshot over CHAT_SHARE_MAX_MESSAGES or CHAT_SHARE_MAX_BYTES: not shared, or not continued."""


class InvalidShare(
    ChatError,
    code="invalid_share",
    status=400,
    detail='Send {"login_required": true} or {"login_required": false}.',
):
    """A share's options that are not `{"login_required": bool}` (nothing is shared)."""


class TooManySockets(
    ChatError,
    code="too_many_sockets",
    status=429,
    detail="Too many open chat sockets; close a tab and retry.",
):
    """The owner has CHAT_MAX_SOCKETS_PER_OWNER chat sockets open (the socket is then closed)."""


class SessionExpired(
    ChatError,
    code="session_expired",
    status=401,
    detail="Your session has ended; reload the page to sign in again.",
):
    """The session a socket connected with has ended (logout, expiry): it may start no more turns."""


class InvalidSessionId(
    ChatError,
    code="invalid_session_id",
    status=400,
    detail="Session ids are 1 to 64 of A-Z a-z 0-9 _ -.",
):
    """A socket path whose conversation id is not one (the socket is then closed)."""


class NotConfigured(
    ChatError,
    code="not_configured",
    status=503,
    detail="The server has no DEDALUS_API_KEY; ask its operator to set one.",
):
    """The server has no API key for the model service."""


class Unavailable(
    ChatError, code="unavailable", status=503, detail="The server is unavailable; try again in a moment."
):
    """This instance cannot do it now (it is shutting down, or the database or another instance did not
    answer): the client retries, ideally on another instance."""


class InternalError(ChatError):
    """The server failed; the base's code and text."""


class UpstreamError(ChatError, code="upstream_error", status=502, detail="The model service failed."):
    """The Dedalus API answered with an error or broke the stream: `upstream_error`, or
    `upstream_timeout` when it was too slow."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.retryable, self.retry_after = retryable, retry_after
        self.status = status  # the HTTP status the upstream answered, when it answered one


class UpstreamRateLimited(UpstreamError, code="upstream_rate_limited", status=429):
    """The Dedalus API answered 429 (after the relay's retries); with `retry_after`, the whole seconds its
    Retry-After said, when it said one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, retryable=True, retry_after=retry_after, status=429)
        if retry_after is not None:  # what a client is told: whole seconds, as a Retry-After header says
            self.details["retry_after"] = math.ceil(max(retry_after, 0.0))
