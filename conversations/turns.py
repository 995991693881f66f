"""A turn: a message sent, a message edited or a reply regenerated, stored before anything goes upstream.

Every kind of turn locks its conversation, runs the same checks (the model, the MCP servers, the owner's
limits, no reply streaming), stores what it must and opens the reply row that the instance streaming it
then writes (replies.py). That streaming row doubles as the conversation's "reply in flight" marker,
checked under the row lock, so two server instances never stream into one conversation at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from .exceptions import (
    Busy,
    EmptyMessage,
    InvalidMcpServer,
    InvalidMessage,
    MessageTooLong,
    NoSuchMessage,
    NoSuchReply,
    UnknownModel,
)
from .models import ChatModel, Conversation, MCPServerPreset, Message
from .owners import ConversationRef, Owner
from .quotas import daily_quota_check, replies_in_flight_check
from .replies import lease_expiry
from .selectors import ThreadState, message_as_dict, thread_state
from .threads import Pairs, thread_leaf_id, thread_path_ids, thread_siblings
from .validators import mcp_target_error, mcp_target_is_internal

TITLE_LENGTH = 60


@dataclass(frozen=True, slots=True)
class DuplicateSend:
    """A resent frame whose `client_id` is already stored: nothing new was created.

    `message_id` is the message that carries it: the user message of a send or an edit, or the reply of
    a regenerate.
    """

    client_id: str
    message_id: int


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """What every kind of turn asks for: whose conversation, the model and MCP servers (None: keep the
    conversation's), the client's id of the frame (its resend stores nothing), and the instance that will
    stream the reply."""

    ref: ConversationRef
    owner: Owner
    model: str | None = None
    mcp_servers: list[str] | None = None
    client_id: str = ""
    streamed_by: str = ""


@dataclass(frozen=True, slots=True)
class Turn:
    """A reply row just opened, the user message it answers when the turn stored one (None for a
    regenerate), its parent (the user message it answers), and what goes upstream."""

    ref: ConversationRef
    user_message: dict[str, Any] | None
    reply_id: int
    parent_id: int
    model: str
    mcp_servers: list[str]
    upstream_messages: list[dict[str, str]]


@dataclass(slots=True)
class _TurnContext:
    """A conversation locked for a new reply, with the model, servers and message tree it will use."""

    request: TurnRequest
    conversation: Conversation
    pairs: Pairs
    model: str
    mcp_servers: list[str]


def message_content_check(content: str) -> None:
    """Raise EmptyMessage if the text is empty, MessageTooLong if longer than CHAT_MAX_MESSAGE_CHARS."""
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if not content.strip():
        raise EmptyMessage()
    if len(content) > limit:
        raise MessageTooLong(f"Messages must be at most {limit} characters.")


def model_resolve(*, requested: str | None, current: str) -> str:
    """Return the model for the next reply: the one asked for, else the conversation's, else the default.

    Raise UnknownModel if the one asked for is not an enabled ChatModel, or none is enabled.
    """
    enabled = list(ChatModel.objects.enabled().values_list("name", "is_default"))
    names = {name for name, _ in enabled}
    if requested is not None:
        if requested not in names:
            raise UnknownModel(f"{requested[:200]!r} is not an available model.")
        return requested
    if current in names:
        return current
    if not enabled:
        raise UnknownModel("No model is enabled; an administrator must enable one.")
    return next((name for name, is_default in enabled if is_default), enabled[0][0])


def mcp_servers_clean(servers: list[str]) -> list[str]:
    """Return the MCP servers without duplicates, in order.

    Raise InvalidMcpServer for an entry that is not a slug or https URL, or too many.
    """
    limit = settings.CHAT_MAX_MCP_SERVERS
    cleaned = list(dict.fromkeys(servers))
    if len(cleaned) > limit:
        raise InvalidMcpServer(f"At most {limit} MCP servers per message.")
    for target in cleaned:
        error = mcp_target_error(target)
        if error:
            raise InvalidMcpServer(f"{target[:200]!r}: {error}")
    internal = [target for target in cleaned if mcp_target_is_internal(target)]
    if internal:
        # An internal host only when an administrator offers it as a preset (no SSRF by free text).
        allowed = set(
            MCPServerPreset.objects.enabled().filter(target__in=internal).values_list("target", flat=True)
        )
        for target in internal:
            if target not in allowed:
                raise InvalidMcpServer(
                    f"{target[:200]!r}: private, loopback and local hosts are not allowed."
                )
    return cleaned


def upstream_messages_build(messages: list[Message]) -> list[dict[str, str]]:
    """The history the model sees: turns in order, keeping partial replies the user saw.

    A reply that failed before any text leaves no assistant turn; the user turns around it are merged
    into one, so the upstream never gets two user messages in a row.
    """
    built: list[dict[str, str]] = []
    for message in messages:
        if message.role == Message.Role.ASSISTANT and not message.content:
            continue
        if built and built[-1]["role"] == message.role:
            built[-1] = {"role": message.role, "content": f"{built[-1]['content']}\n\n{message.content}"}
        else:
            built.append({"role": message.role, "content": message.content})
    return built


@transaction.atomic
def turn_begin(request: TurnRequest, *, content: str) -> Turn | DuplicateSend:
    """Store the user's message after the active branch's leaf and open the reply row, before anything
    goes upstream; the model sees the active branch only.

    Return DuplicateSend, storing nothing, when `client_id` was already stored in this conversation.
    Raise ChatError with `invalid_message`, `message_too_long`, `unknown_model`, `invalid_mcp_server`,
    `quota_exceeded`, or `busy` when a reply of this conversation is still streaming; nothing is
    stored then.
    """
    message_content_check(content)
    context = _turn_prepare(request)
    if isinstance(context, DuplicateSend):
        return context
    leaf_id = thread_leaf_id(context.pairs, context.conversation.current_message_id)
    path = _messages_in_order(thread_path_ids(context.pairs, leaf_id))
    user_message = _user_message_create(context, content=content, parent_id=leaf_id)
    return _reply_open(context, path=[*path, user_message], user_message=user_message)


@transaction.atomic
def turn_regenerate(request: TurnRequest, *, reply_id: int) -> Turn | DuplicateSend:
    """Open a new version of a reply: a sibling under the same user message, which becomes the active
    leaf; the old version is kept. The model sees the branch up to that user message.

    `client_id` is stored on the new reply row, so a resent frame returns DuplicateSend. Raise ChatError
    `invalid_message` when `reply_id` is not a reply of this conversation, and the errors of a send.
    """
    missing = NoSuchReply()
    context = _turn_prepare(request, missing=missing)
    if isinstance(context, DuplicateSend):
        return context
    replaced = _conversation_message(context, message_id=reply_id, role=Message.Role.ASSISTANT)
    if replaced is None or replaced.parent_id is None:
        raise missing
    path = _messages_in_order(thread_path_ids(context.pairs, replaced.parent_id))
    return _reply_open(context, path=path, user_message=None)


@transaction.atomic
def turn_edit(request: TurnRequest, *, message_id: int, content: str) -> Turn | DuplicateSend:
    """Store an edited version of a user message, as a sibling of it, and open its reply; the new reply
    becomes the active leaf and the old versions are kept. The model sees the branch up to the edit.

    `client_id` is stored on the new user message. Raise ChatError `invalid_message` when `message_id`
    is not a user message of this conversation, and the errors of a send.
    """
    message_content_check(content)
    missing = NoSuchMessage()
    context = _turn_prepare(request, missing=missing)
    if isinstance(context, DuplicateSend):
        return context
    edited = _conversation_message(context, message_id=message_id, role=Message.Role.USER)
    if edited is None:
        raise missing
    path = _messages_in_order(thread_path_ids(context.pairs, edited.parent_id))
    user_message = _user_message_create(context, content=content, parent_id=edited.parent_id)
    return _reply_open(context, path=[*path, user_message], user_message=user_message)


def _turn_prepare(
    request: TurnRequest, *, missing: InvalidMessage | None = None
) -> _TurnContext | DuplicateSend:
    """Lock the conversation for a new reply and run the checks every kind of turn shares.

    The row lock serialises turns of one conversation across threads and server instances. A send
    creates the conversation; a regenerate or an edit (`missing` set) needs one and raises `missing`
    without it. Return DuplicateSend when `client_id` is already stored in the conversation, on a
    message of any role. Raise ChatError `unknown_model`, `invalid_mcp_server`, `quota_exceeded`, or
    `busy` when a reply still streams.
    """
    ref, owner, client_id = request.ref, request.owner, request.client_id
    locked = Conversation.objects.select_for_update()
    created = False
    if missing is None:
        conversation, created = locked.get_or_create(
            owner_key=ref.owner_key,
            session_id=ref.session_id,
            defaults={"user_id": owner.user_id, "owner_session_key": owner.session_digest},
        )
    else:
        conversation = locked.filter(owner_key=ref.owner_key, session_id=ref.session_id).first()
        if conversation is None:
            raise missing
    # A conversation this turn just created holds no message yet: nothing to read.
    thread = (
        ThreadState(pairs=[])
        if created
        else thread_state(conversation_id=conversation.pk, client_id=client_id)
    )
    if thread.sent_id is not None:
        return DuplicateSend(client_id=client_id, message_id=thread.sent_id)
    chosen_model = model_resolve(requested=request.model, current=conversation.model)
    requested_servers = request.mcp_servers
    servers = mcp_servers_clean(conversation.mcp_servers if requested_servers is None else requested_servers)
    streaming_reply_refuse(thread)
    replies_in_flight_check(owner_key=ref.owner_key)
    daily_quota_check(owner_key=ref.owner_key)
    return _TurnContext(
        request=request,
        conversation=conversation,
        pairs=thread.pairs,
        model=chosen_model,
        mcp_servers=servers,
    )


def _conversation_message(context: _TurnContext, *, message_id: int, role: str) -> Message | None:
    """The conversation's message of that id and role, or None."""
    return Message.objects.filter(pk=message_id, conversation=context.conversation, role=role).first()


def _messages_in_order(ids: list[int]) -> list[Message]:
    """The messages of these ids, in this order (one query)."""
    rows = Message.objects.in_bulk(ids)
    return [rows[pk] for pk in ids]


def _user_message_create(context: _TurnContext, *, content: str, parent_id: int | None) -> Message:
    # Content was checked by the caller and every other field is set here, so no full_clean() round trip.
    return Message.objects.create(
        conversation=context.conversation,
        parent_id=parent_id,
        role=Message.Role.USER,
        content=content,
        model=context.model,
        mcp_servers=context.mcp_servers,
        client_id=context.request.client_id,  # a send's or an edit's id is on its user message
    )


def _reply_open(context: _TurnContext, *, path: list[Message], user_message: Message | None) -> Turn:
    """Open the streaming reply row under the last message of `path` (the user message it answers),
    make it the active leaf, and build the upstream history from `path`.

    The streaming row doubles as the conversation's lock: no other turn starts until it ends.
    """
    parent = path[-1]
    conversation = context.conversation
    reply = Message.objects.create(
        conversation=conversation,
        parent=parent,
        role=Message.Role.ASSISTANT,
        model=context.model,
        mcp_servers=context.mcp_servers,
        status=Message.Status.STREAMING,
        # A regenerate's id is on its new reply (it stores no user message).
        client_id=context.request.client_id if user_message is None else "",
        streamed_by=context.request.streamed_by,
        lease_expires_at=lease_expiry(),
    )
    conversation.current_message = reply
    conversation.model, conversation.mcp_servers = context.model, context.mcp_servers
    if not conversation.title and user_message is not None:
        conversation.title = " ".join(user_message.content.split())[:TITLE_LENGTH]
    conversation.save(update_fields=["model", "mcp_servers", "title", "current_message", "updated_at"])
    shown = None
    if user_message is not None:
        siblings = thread_siblings([*context.pairs, (user_message.pk, user_message.parent_id)])
        shown = message_as_dict(user_message, siblings=siblings)
    return Turn(
        ref=context.request.ref,
        user_message=shown,
        reply_id=reply.pk,
        parent_id=parent.pk,
        model=context.model,
        mcp_servers=context.mcp_servers,
        upstream_messages=upstream_messages_build(path),
    )


class ReplyLapsed(Busy):
    """A turn found the conversation's reply still streaming, but with a lapsed lease: its server died.
    It must be stored as lost (with its reply log's text) before the turn can start."""

    default_detail = "The previous reply's server stopped; it is being stored. Send again."

    def __init__(self, reply_id: int) -> None:
        super().__init__()
        self.reply_id = reply_id


def streaming_reply_refuse(thread: ThreadState) -> None:
    """Raise Busy while a reply of the conversation streams, and ReplyLapsed when it
    streams under a lapsed lease (its server died: the caller stores it as lost, then may retry)."""
    if thread.streaming is None:
        return
    reply_id, lapsed = thread.streaming
    if lapsed:
        raise ReplyLapsed(reply_id)
    raise Busy()
