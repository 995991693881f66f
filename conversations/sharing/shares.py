"""Share links: a read-only snapshot of a conversation's active branch at an unguessable URL, revocable,
and "continue this conversation", which copies a snapshot into the viewer's own namespace.

A snapshot names no owner and carries no owner data: no message ids of the original, no feedback, no
client ids, and attachments by name, size and type only (their files stay behind their owner's links).
It is bounded (CHAT_SHARE_MAX_MESSAGES, CHAT_SHARE_MAX_BYTES), so a continue, which anyone with the link
may post, writes a bounded copy, in one bulk insert; how often is the views' limit (request_limits).
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..chat.selectors import attachments_shown, message_as_dict, thread_pairs
from ..chat.threads import thread_leaf_id, thread_path_ids
from ..exceptions import ShareTooLarge
from ..models import ChatModel, Conversation, Message, Share
from ..owners import Owner
from ..teams.access import usable

# secrets.token_urlsafe(TOKEN_BYTES): 128 bits, 22 characters.
TOKEN_BYTES = 16
# What a shared message keeps of the chat's own (selectors.message_as_dict), named one by one so that a
# field added there stays out of shares until chosen: never ids, client ids, feedback or MCP servers.
SHARED_FIELDS = (
    "role",
    "content",
    "model",
    "status",
    "error",
    "finish_reason",
    "usage",
    "tools",
    "tool_calls",  # an API client's tools a reply called, and a tool result's call: a continued copy
    "tool_call_id",  # sends them upstream as they were
    "agent",
    "served_models",
    "handoffs",
    "context_dropped",
    "created_at",
    "finished_at",
)
# What a shared tool activity keeps (upstream.ToolActivity, as stored): what a reader needs to follow
# the call, never the MCP server it ran on (its URL may carry a token).
SHARED_TOOL_FIELDS = ("phase", "name", "arguments", "result", "is_error", "duration_ms")


def _attachment_named(attachment: dict[str, Any]) -> dict[str, Any]:
    """An attachment as a share shows it: what it was, never where its owner's file is."""
    return {
        "name": attachment["name"],
        "size": attachment["size"],
        "content_type": attachment["content_type"],
    }


def _snapshot_entry(
    shown: dict[str, Any], *, number: int, attachments: list[dict[str, Any]]
) -> dict[str, Any]:
    """Message `number` of a snapshot from a message as the chat shows it (or as a snapshot stored it):
    cut to SHARED_FIELDS, its tool activity to SHARED_TOOL_FIELDS, numbered, attachments named."""
    return {
        **{name: shown.get(name) for name in SHARED_FIELDS},
        "tools": [
            {name: activity[name] for name in SHARED_TOOL_FIELDS if name in activity}
            for activity in shown.get("tools") or []
        ],
        "id": number,
        "parent_id": number - 1 or None,
        "siblings": [number],
        "attachments": [_attachment_named(attachment) for attachment in attachments],
    }


def _caps_check(*, messages: int, size: int, doing: str) -> None:
    """Raise ShareTooLarge, saying what `doing` ("share", "continue") met, when a snapshot of `messages`
    messages and `size` bytes (as JSON) is over CHAT_SHARE_MAX_MESSAGES or CHAT_SHARE_MAX_BYTES."""
    most_messages, most_bytes = settings.CHAT_SHARE_MAX_MESSAGES, settings.CHAT_SHARE_MAX_BYTES
    if messages > most_messages or size > most_bytes:
        raise ShareTooLarge(
            f"This {'chat' if doing == 'share' else 'shared chat'} is too long to {doing}: a shared chat "
            f"holds at most {most_messages} messages and {most_bytes // 1024} KiB of text."
        )


def _snapshot_messages(conversation: Conversation) -> list[dict[str, Any]]:
    """The conversation's active branch, first message first, as the shared page shows it: numbered
    1, 2, … (each the parent of the next), no versions, only finished messages.

    Raise ShareTooLarge when the branch is over the caps (its length is known before a row is read)."""
    pairs = thread_pairs(conversation_id=conversation.pk)
    path = thread_path_ids(pairs, thread_leaf_id(pairs, conversation.current_message_id))
    _caps_check(messages=len(path), size=0, doing="share")
    rows = Message.objects.in_bulk(path)
    shown = attachments_shown(rows.values())
    snapshot: list[dict[str, Any]] = []
    for message_id in path:
        message = rows[message_id]
        if message.status == Message.Status.STREAMING:
            break  # a reply still being written is not shared half-way (it is always the leaf)
        snapshot.append(
            _snapshot_entry(
                message_as_dict(message, siblings={}),
                number=len(snapshot) + 1,
                attachments=[shown[i] for i in message.attachment_ids if i in shown],
            )
        )
    _caps_check(messages=len(snapshot), size=len(orjson.dumps(snapshot)), doing="share")
    return snapshot


def share_messages(*, share: Share) -> list[dict[str, Any]]:
    """A share's snapshot as it is served and continued: cut to the allowlists again, so a snapshot
    stored before a field left them (a tool's MCP server) never shows it."""
    return [
        _snapshot_entry(shown, number=number, attachments=shown.get("attachments") or [])
        for number, shown in enumerate(share.messages, start=1)
    ]


@transaction.atomic
def share_create(*, owner_key: str, session_id: str, login_required: bool) -> Share | None:
    """Share the owner's conversation as it is now: a new link, or the existing link's snapshot taken
    again (same token) with `login_required` as given. None when they have no such conversation; raise
    ShareTooLarge (nothing changed) when its active branch is over the caps.

    A revoke running meanwhile never brings the old link back: the conversation's lock orders this and
    share_revoke, the share's row lock holds off every other delete (the admin's, the conversation's) until
    this commits, and an existing link is only ever UPDATEd (a save that found no row would INSERT it again).
    """
    conversation = (
        Conversation.objects.select_for_update().filter(owner_key=owner_key, session_id=session_id).first()
    )
    if conversation is None:
        return None
    existing = Share.objects.select_for_update().filter(conversation=conversation).first()
    share = existing or Share(conversation=conversation, token=secrets.token_urlsafe(TOKEN_BYTES))
    share.title = conversation.title
    share.messages = _snapshot_messages(conversation)
    share.login_required = login_required
    share.full_clean()
    share.save(force_insert=existing is None, force_update=existing is not None)
    return share


def share_of_conversation(*, owner_key: str, session_id: str) -> Share | None:
    """The share of the owner's conversation, if it is shared."""
    return Share.objects.filter(
        conversation__owner_key=owner_key, conversation__session_id=session_id
    ).first()


@transaction.atomic
def share_revoke(*, owner_key: str, session_id: str) -> bool:
    """Stop sharing the owner's conversation: its URL answers 404 from now on. False if it was not shared
    (or is not theirs). It takes the conversation's lock, as share_create does, so the two run in turn."""
    conversation = (
        Conversation.objects.select_for_update().filter(owner_key=owner_key, session_id=session_id).first()
    )
    if conversation is None:
        return False
    deleted, _ = Share.objects.filter(conversation=conversation).delete()
    return bool(deleted)


def share_of_token(*, token: str) -> Share | None:
    """The share a URL's token names; None for a revoked, mistyped or guessed one."""
    return Share.objects.filter(token=token).first()


@transaction.atomic
def share_continue(*, share: Share, owner: Owner) -> str:
    """Copy a share's snapshot into a new conversation of `owner` (the original is not touched) and
    return its session id. The copies carry the messages' words, models and tool activity, not their
    token counts (nobody's usage or quota grows by a copy) and not their attachments' files.

    One INSERT for all the messages and one UPDATE linking each to the one before, however long the
    snapshot. Raise ShareTooLarge, copying nothing, for a snapshot over the caps (stored before they were
    lowered): the caps bound what a continue writes. The copy goes on with the snapshot's last model
    only if `owner` may use it (teams/access); else with none, so its first message goes to what they
    may use, as a new chat's does."""
    snapshot = share_messages(share=share)
    _caps_check(messages=len(snapshot), size=len(orjson.dumps(snapshot)), doing="continue")
    conversation = Conversation.objects.create(
        owner_key=owner.key,
        session_id=secrets.token_urlsafe(TOKEN_BYTES),
        user_id=owner.user_id,
        owner_session_key=owner.session_digest,
        title=share.title,
        model=_model_usable(snapshot, owner),
    )
    copied_at = timezone.now()  # one moment for all: the history's order is then the ids', as inserted
    copies = Message.objects.bulk_create(
        Message(
            conversation=conversation,
            role=shown["role"],
            content=shown["content"] or "",
            model=shown["model"] or "",
            status=shown["status"],
            error=shown["error"] or "",
            finish_reason=shown["finish_reason"] or "",
            tools=shown["tools"],
            tool_calls=shown["tool_calls"] or [],
            tool_call_id=shown["tool_call_id"] or "",
            agent_slug=shown["agent"] or "",
            served_models=shown["served_models"] or [],
            handoff_offsets=[handoff["offset"] for handoff in shown["handoffs"] or []],
            created_at=copied_at,
        )
        for shown in snapshot
    )
    for parent, copy in zip(copies, copies[1:], strict=False):
        copy.parent = parent
    Message.objects.bulk_update(copies[1:], ["parent"])
    conversation.current_message = copies[-1] if copies else None
    conversation.save(update_fields=["current_message"])
    return conversation.session_id


def _model_usable(snapshot: list[dict[str, Any]], owner: Owner) -> str:
    """The model of the snapshot's last reply, if `owner` may use it; else ""."""
    model = next((m["model"] or "" for m in reversed(snapshot) if m["role"] == "assistant"), "")
    if model and not usable(ChatModel.objects.filter(name=model), owner.user_id).exists():
        return ""
    return model
