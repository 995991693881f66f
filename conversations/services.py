"""Writes: conversations and messages, stored in the order the protocol promises.

A turn is stored before anything goes upstream; the reply row is written when it starts, at most a few
times while it streams, and once more at its end. The streaming reply row doubles as the conversation's
"reply in flight" marker, checked under a row lock, so two server instances never stream into one
conversation at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Length, Now
from django.utils import timezone

from .exceptions import ChatError
from .models import ChatModel, Conversation, MCPServerPreset, Message, UserQuota
from .owners import ConversationRef, Owner
from .selectors import message_as_dict, thread_pairs
from .text import json_storable, text_storable
from .threads import Pairs, thread_leaf_id, thread_newest_leaf, thread_path_ids, thread_siblings
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

    conversation: Conversation
    pairs: Pairs
    model: str
    mcp_servers: list[str]


def message_content_check(content: str) -> None:
    """Raise ChatError if the text is empty or longer than CHAT_MAX_MESSAGE_CHARS."""
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if not content.strip():
        raise ChatError("invalid_message", "The message is empty.")
    if len(content) > limit:
        raise ChatError("message_too_long", f"Messages must be at most {limit} characters.")


def model_resolve(*, requested: str | None, current: str) -> str:
    """Return the model for the next reply: the one asked for, else the conversation's, else the default.

    Raise ChatError("unknown_model") if the one asked for is not an enabled ChatModel, or none is enabled.
    """
    enabled = list(ChatModel.objects.enabled().values_list("name", "is_default"))
    names = {name for name, _ in enabled}
    if requested is not None:
        if requested not in names:
            raise ChatError("unknown_model", f"{requested[:200]!r} is not an available model.")
        return requested
    if current in names:
        return current
    if not enabled:
        raise ChatError("unknown_model", "No model is enabled; an administrator must enable one.")
    return next((name for name, is_default in enabled if is_default), enabled[0][0])


def mcp_servers_clean(servers: list[str]) -> list[str]:
    """Return the MCP servers without duplicates, in order.

    Raise ChatError("invalid_mcp_server") for an entry that is not a slug or https URL, or too many.
    """
    limit = settings.CHAT_MAX_MCP_SERVERS
    cleaned = list(dict.fromkeys(servers))
    if len(cleaned) > limit:
        raise ChatError("invalid_mcp_server", f"At most {limit} MCP servers per message.")
    for target in cleaned:
        error = mcp_target_error(target)
        if error:
            raise ChatError("invalid_mcp_server", f"{target[:200]!r}: {error}")
    internal = [target for target in cleaned if mcp_target_is_internal(target)]
    if internal:
        # An internal host only when an administrator offers it as a preset (no SSRF by free text).
        allowed = set(
            MCPServerPreset.objects.enabled().filter(target__in=internal).values_list("target", flat=True)
        )
        for target in internal:
            if target not in allowed:
                raise ChatError(
                    "invalid_mcp_server",
                    f"{target[:200]!r}: private, loopback and local hosts are not allowed.",
                )
    return cleaned


# Tokens are estimated from text at this many characters each, when the upstream reported none.
CHARS_PER_TOKEN = 4


def tokens_estimate(chars: int) -> int:
    """A token count for that many characters of text, when the upstream gave none."""
    return -(-chars // CHARS_PER_TOKEN)


def usage_estimate(*, prompt: list[dict[str, str]], reply: str) -> dict[str, int]:
    """The usage of a reply that ended without the upstream's count: its prompt and its text, estimated."""
    prompt_tokens = sum(tokens_estimate(len(message["content"])) for message in prompt)
    completion_tokens = tokens_estimate(len(reply))
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def daily_tokens_used(*, owner_key: str) -> int:
    """Tokens the owner's replies used since midnight UTC: as stored (counted or estimated), and for
    replies still streaming, their text so far, estimated."""
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    replies = Message.objects.filter(
        conversation__owner_key=owner_key, role=Message.Role.ASSISTANT, created_at__gte=midnight
    )
    used = replies.aggregate(total=Sum("total_tokens"))["total"] or 0
    streaming = replies.streaming().aggregate(chars=Sum(Length("content")))["chars"] or 0
    return used + tokens_estimate(streaming)


def replies_in_flight_check(*, owner_key: str) -> None:
    """Raise ChatError("too_many_replies") when the owner has CHAT_MAX_REPLIES_PER_OWNER replies streaming
    (in any conversation, on any instance)."""
    limit = settings.CHAT_MAX_REPLIES_PER_OWNER
    if limit and Message.objects.streaming().filter(conversation__owner_key=owner_key).count() >= limit:
        raise ChatError(
            "too_many_replies", f"At most {limit} replies at once; wait for one to end or stop it."
        )


def daily_quota_for(*, owner_key: str) -> int:
    """The owner's daily token quota: a user's own (admin), else CHAT_DAILY_TOKEN_QUOTA; 0 is none."""
    if owner_key.startswith("u:"):
        own = (
            UserQuota.objects.filter(user_id=int(owner_key[2:]))
            .values_list("daily_tokens", flat=True)
            .first()
        )
        if own is not None:
            return own
    return settings.CHAT_DAILY_TOKEN_QUOTA


def daily_quota_check(*, owner_key: str) -> None:
    """Raise ChatError("quota_exceeded") when the owner used their daily token quota today."""
    quota = daily_quota_for(owner_key=owner_key)
    if not quota:
        return
    used = daily_tokens_used(owner_key=owner_key)
    if used >= quota:
        now = timezone.now()
        tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        raise ChatError(
            "quota_exceeded",
            f"The daily quota of {quota} tokens is used up ({used}); it renews at midnight UTC.",
            retry_after=int((tomorrow - now).total_seconds()) + 1,
        )


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


def lease_expiry() -> CombinedExpression:
    """A new lease's expiry, on the database's clock: every instance judges leases by that one clock."""
    return Now() + timedelta(seconds=settings.CHAT_REPLY_LEASE_SECONDS)


@transaction.atomic
def turn_begin(
    *,
    ref: ConversationRef,
    owner: Owner,
    content: str,
    model: str | None,
    mcp_servers: list[str] | None,
    client_id: str = "",
    lease_owner: str = "",
) -> Turn | DuplicateSend:
    """Store the user's message after the active branch's leaf and open the reply row, before anything
    goes upstream; the model sees the active branch only.

    Return DuplicateSend, storing nothing, when `client_id` was already stored in this conversation.
    Raise ChatError with `invalid_message`, `message_too_long`, `unknown_model`, `invalid_mcp_server`,
    `quota_exceeded`, or `busy` when a reply of this conversation is still streaming; nothing is
    stored then.
    """
    message_content_check(content)
    context = _turn_prepare(ref=ref, owner=owner, model=model, mcp_servers=mcp_servers, client_id=client_id)
    if isinstance(context, DuplicateSend):
        return context
    leaf_id = thread_leaf_id(context.pairs, context.conversation.current_message_id)
    path = _messages_in_order(thread_path_ids(context.pairs, leaf_id))
    user_message = _user_message_create(context, content=content, parent_id=leaf_id, client_id=client_id)
    return _reply_open(
        context, ref=ref, path=[*path, user_message], user_message=user_message, lease_owner=lease_owner
    )


@transaction.atomic
def turn_regenerate(
    *,
    ref: ConversationRef,
    owner: Owner,
    reply_id: int,
    model: str | None,
    mcp_servers: list[str] | None,
    client_id: str = "",
    lease_owner: str = "",
) -> Turn | DuplicateSend:
    """Open a new version of a reply: a sibling under the same user message, which becomes the active
    leaf; the old version is kept. The model sees the branch up to that user message.

    `client_id` is stored on the new reply row, so a resent frame returns DuplicateSend. Raise ChatError
    `invalid_message` when `reply_id` is not a reply of this conversation, and the errors of a send.
    """
    missing = ChatError("invalid_message", "No such reply in this conversation.")
    context = _turn_prepare(
        ref=ref, owner=owner, model=model, mcp_servers=mcp_servers, client_id=client_id, missing=missing
    )
    if isinstance(context, DuplicateSend):
        return context
    replaced = _conversation_message(context, message_id=reply_id, role=Message.Role.ASSISTANT)
    if replaced is None or replaced.parent_id is None:
        raise missing
    path = _messages_in_order(thread_path_ids(context.pairs, replaced.parent_id))
    return _reply_open(
        context, ref=ref, path=path, user_message=None, lease_owner=lease_owner, client_id=client_id
    )


@transaction.atomic
def turn_edit(
    *,
    ref: ConversationRef,
    owner: Owner,
    message_id: int,
    content: str,
    model: str | None,
    mcp_servers: list[str] | None,
    client_id: str = "",
    lease_owner: str = "",
) -> Turn | DuplicateSend:
    """Store an edited version of a user message, as a sibling of it, and open its reply; the new reply
    becomes the active leaf and the old versions are kept. The model sees the branch up to the edit.

    `client_id` is stored on the new user message. Raise ChatError `invalid_message` when `message_id`
    is not a user message of this conversation, and the errors of a send.
    """
    message_content_check(content)
    missing = ChatError("invalid_message", "No such message in this conversation.")
    context = _turn_prepare(
        ref=ref, owner=owner, model=model, mcp_servers=mcp_servers, client_id=client_id, missing=missing
    )
    if isinstance(context, DuplicateSend):
        return context
    edited = _conversation_message(context, message_id=message_id, role=Message.Role.USER)
    if edited is None:
        raise missing
    path = _messages_in_order(thread_path_ids(context.pairs, edited.parent_id))
    user_message = _user_message_create(
        context, content=content, parent_id=edited.parent_id, client_id=client_id
    )
    return _reply_open(
        context, ref=ref, path=[*path, user_message], user_message=user_message, lease_owner=lease_owner
    )


@transaction.atomic
def branch_switch(*, ref: ConversationRef, message_id: int) -> None:
    """Make the branch through `message_id` active: its newest leaf (the newest child at every step)
    becomes the conversation's current message.

    Raise ChatError `invalid_message` when the message is not in the owner's conversation, and `busy`
    while a reply streams (a streaming reply is always the active leaf, and stays so).
    """
    conversation = (
        Conversation.objects.select_for_update()
        .filter(owner_key=ref.owner_key, session_id=ref.session_id)
        .first()
    )
    pairs = thread_pairs(conversation_id=conversation.pk) if conversation is not None else []
    if conversation is None or message_id not in dict(pairs):
        raise ChatError("invalid_message", "No such message in this conversation.")
    _streaming_reply_refuse(conversation)
    conversation.current_message_id = thread_newest_leaf(pairs, message_id)
    conversation.save(update_fields=["current_message"])


def _turn_prepare(
    *,
    ref: ConversationRef,
    owner: Owner,
    model: str | None,
    mcp_servers: list[str] | None,
    client_id: str,
    missing: ChatError | None = None,
) -> _TurnContext | DuplicateSend:
    """Lock the conversation for a new reply and run the checks every kind of turn shares.

    The row lock serialises turns of one conversation across threads and server instances. A send
    creates the conversation; a regenerate or an edit (`missing` set) needs one and raises `missing`
    without it. Return DuplicateSend when `client_id` is already stored in the conversation, on a
    message of any role. Raise ChatError `unknown_model`, `invalid_mcp_server`, `quota_exceeded`, or
    `busy` when a reply still streams.
    """
    locked = Conversation.objects.select_for_update()
    if missing is None:
        conversation, _ = locked.get_or_create(
            owner_key=ref.owner_key,
            session_id=ref.session_id,
            defaults={"user_id": owner.user_id, "owner_session_key": owner.session_digest},
        )
    else:
        conversation = locked.filter(owner_key=ref.owner_key, session_id=ref.session_id).first()
        if conversation is None:
            raise missing
    if client_id:
        sent = (
            Message.objects.filter(conversation=conversation, client_id=client_id)
            .values_list("pk", flat=True)
            .first()
        )
        if sent is not None:
            return DuplicateSend(client_id=client_id, message_id=sent)
    chosen_model = model_resolve(requested=model, current=conversation.model)
    servers = mcp_servers_clean(conversation.mcp_servers if mcp_servers is None else mcp_servers)
    _streaming_reply_refuse(conversation)
    replies_in_flight_check(owner_key=ref.owner_key)
    daily_quota_check(owner_key=ref.owner_key)
    return _TurnContext(
        conversation=conversation,
        pairs=thread_pairs(conversation_id=conversation.pk),
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


def _user_message_create(
    context: _TurnContext, *, content: str, parent_id: int | None, client_id: str
) -> Message:
    # Content was checked by the caller and every other field is set here, so no full_clean() round trip.
    return Message.objects.create(
        conversation=context.conversation,
        parent_id=parent_id,
        role=Message.Role.USER,
        content=content,
        model=context.model,
        mcp_servers=context.mcp_servers,
        client_id=client_id,
    )


def _reply_open(
    context: _TurnContext,
    *,
    ref: ConversationRef,
    path: list[Message],
    user_message: Message | None,
    lease_owner: str,
    client_id: str = "",
) -> Turn:
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
        client_id=client_id,
        lease_owner=lease_owner,
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
        ref=ref,
        user_message=shown,
        reply_id=reply.pk,
        parent_id=parent.pk,
        model=context.model,
        mcp_servers=context.mcp_servers,
        upstream_messages=upstream_messages_build(path),
    )


SERVER_LOST_ERROR = "The server writing this reply stopped; the text is kept up to what was shown."


class ReplyLapsed(ChatError):
    """A turn found the conversation's reply still streaming, but with a lapsed lease: its server died.
    It must be stored as lost (with its reply log's text) before the turn can start."""

    def __init__(self, reply_id: int) -> None:
        super().__init__("busy", "The previous reply's server stopped; it is being stored. Send again.")
        self.reply_id = reply_id


def _streaming_reply_refuse(conversation: Conversation) -> None:
    """Raise ChatError("busy") while a reply of the conversation streams, and ReplyLapsed when it
    streams under a lapsed lease (its server died: the caller stores it as lost, then may retry)."""
    streaming = (
        Message.objects.streaming()
        .filter(conversation=conversation)
        .annotate(lapsed=Q(lease_expires_at__lt=Now()))
        .values_list("pk", "lapsed")
        .first()
    )
    if streaming is None:
        return
    reply_id, lapsed = streaming
    if lapsed:
        raise ReplyLapsed(reply_id)
    raise ChatError("busy", "A reply is still being written in this conversation; wait or stop it.")


def lapsed_reply_ids() -> list[int]:
    """The streaming replies whose lease lapsed on the database's clock: their server died mid-stream."""
    return list(Message.objects.lease_lapsed().values_list("pk", flat=True))


@transaction.atomic
def reply_lost_store(*, reply_id: int, shown_text: str, lease_owner: str | None = None) -> Message | None:
    """Store a reply whose server died as interrupted (`server_lost`), keeping every character any
    client was shown: `shown_text` (what its reply log holds) when it extends the last saved text.

    Only a reply that is still streaming under a lapsed lease is touched, or, with `lease_owner`, one
    streamed by that (dead) instance whatever its lease. Return the stored row, or None when it was not
    lost after all (it ended, or its server renewed the lease meanwhile).
    """
    rows = (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .filter(pk=reply_id, status=Message.Status.STREAMING)
    )
    rows = rows.filter(lease_owner=lease_owner) if lease_owner is not None else rows.lease_lapsed()
    message = rows.first()
    if message is None:
        return None
    if len(shown_text) > len(message.content) and shown_text.startswith(message.content):
        message.content = text_storable(shown_text)
    message.status, message.finish_reason = Message.Status.INTERRUPTED, "server_lost"
    message.error_code, message.error = "server_lost", SERVER_LOST_ERROR
    message.lease_expires_at, message.finished_at = None, timezone.now()
    message.save(
        update_fields=[
            "content",
            "status",
            "finish_reason",
            "error_code",
            "error",
            "lease_expires_at",
            "finished_at",
        ]
    )
    return message


def _replies_fenced(reply_ids: list[int], lease_owner: str) -> Any:
    """The replies of these ids that `lease_owner` still holds: streaming under its own lease. Every
    write of a reply's owner goes through this filter, so an instance that lost a reply (it froze past
    its lease and another stored the reply as lost) can never rewrite what others were told."""
    return Message.objects.filter(pk__in=reply_ids, status=Message.Status.STREAMING, lease_owner=lease_owner)


@transaction.atomic
def reply_leases_renew(*, lease_owner: str, reply_ids: list[int]) -> set[int]:
    """Extend the leases of the replies this instance's live tasks stream; return those it still holds
    (the others were stored as lost by another instance: their tasks must stop)."""
    held = list(_replies_fenced(reply_ids, lease_owner).select_for_update().values_list("pk", flat=True))
    if held:
        Message.objects.filter(pk__in=held).update(lease_expires_at=lease_expiry())
    return set(held)


def reply_flush(*, reply_id: int, content: str, lease_owner: str) -> bool:
    """Store the text so far of a streaming reply (a crash loses at most one flush interval) and extend
    its lease; return False when its owner no longer holds it."""
    return bool(
        _replies_fenced([reply_id], lease_owner).update(content=content, lease_expires_at=lease_expiry())
    )


def reply_finish(
    *,
    reply_id: int,
    lease_owner: str,
    content: str,
    status: str,
    finish_reason: str = "",
    usage: dict[str, int] | None = None,
    tools: list[dict[str, Any]] | None = None,
    error_code: str = "",
    error: str = "",
) -> bool:
    """Store a reply's final text and how it ended (what every later reader sees); return False, storing
    nothing, when its owner no longer holds it."""
    usage = usage or {}
    return bool(
        _replies_fenced([reply_id], lease_owner).update(
            lease_expires_at=None,
            content=text_storable(content),
            status=status,
            finish_reason=finish_reason,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            total_tokens=usage.get("total_tokens"),
            tools=json_storable(tools or []),
            error_code=error_code,
            error=text_storable(error),
            finished_at=timezone.now(),
        )
    )


@transaction.atomic
def conversations_claim(*, session_key: str, user_id: int) -> int:
    """Give a user the conversations of the anonymous browser session they just signed in from.

    `session_key` is the session's raw key; its conversations are stored under its digest. A
    conversation whose id the user already has elsewhere stays with the session (ids are random, so
    this is a near-impossible collision). Return how many moved.
    """
    user_key = Owner(user_id=user_id).key
    taken = Conversation.objects.filter(owner_key=user_key).values_list("session_id", flat=True)
    return (
        Conversation.objects.filter(owner_key=Owner(session_key=session_key).key)
        .exclude(session_id__in=list(taken))
        .update(owner_key=user_key, user_id=user_id, owner_session_key="")
    )


def conversations_purge(*, older_than_days: int, batch_size: int = 500, dry_run: bool = False) -> int:
    """Delete conversations untouched for `older_than_days`, with their messages, in batches.

    Safe while the server serves: each batch is its own short transaction, and a conversation with a
    reply streaming right now is kept. Return how many were (or, with dry_run, would be) deleted.

    Each batch locks its conversation rows, as a turn does (`_turn_prepare`), skipping rows a turn holds:
    a turn in progress keeps its conversation, and one that starts after the lock waits for the batch
    and then creates the conversation afresh.
    """
    cutoff = timezone.now() - timedelta(days=older_than_days)
    old = Conversation.objects.filter(updated_at__lt=cutoff).exclude(
        messages__status=Message.Status.STREAMING
    )
    if dry_run:
        return old.count()
    deleted = 0
    while True:
        with transaction.atomic():
            locked = old.select_for_update(skip_locked=True, of=("self",)).order_by("pk")
            ids = list(locked.values_list("pk", flat=True)[:batch_size])
            if not ids:
                return deleted
            # Asked again under the locks: a turn that committed after the query above began (its
            # messages were invisible to it) has made its conversation recent or busy.
            ids = list(old.filter(pk__in=ids).values_list("pk", flat=True))
            Message.objects.filter(conversation_id__in=ids).delete()
            Conversation.objects.filter(pk__in=ids).delete()
        deleted += len(ids)


def conversation_rename(*, owner_key: str, session_id: str, title: str) -> bool:
    """Retitle the owner's conversation (trimmed, at most 200 characters); False if they have none."""
    title = " ".join(text_storable(title).split())[:200]
    if not title:
        raise ChatError("invalid_message", "A title cannot be empty.")
    return bool(Conversation.objects.filter(owner_key=owner_key, session_id=session_id).update(title=title))


@transaction.atomic
def conversation_delete(*, owner_key: str, session_id: str) -> bool:
    """Delete the owner's conversation and its messages; refuse while a reply streams. False if none."""
    conversation = (
        Conversation.objects.select_for_update().filter(owner_key=owner_key, session_id=session_id).first()
    )
    if conversation is None:
        return False
    if Message.objects.streaming().filter(conversation=conversation).exists():
        raise ChatError("busy", "A reply is still being written in this conversation; stop it first.")
    conversation.delete()
    return True
