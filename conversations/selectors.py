"""Reads: what the page and the socket show of conversations and models."""

from __future__ import annotations

from typing import Any

from .models import ChatModel, Conversation, MCPServerPreset, Message
from .owners import ConversationRef


def message_as_dict(message: Message) -> dict[str, Any]:
    """A stored message as the wire protocol shows it."""
    return {
        "id": message.pk,
        "role": message.role,
        "content": message.content,
        "model": message.model,
        "mcp_servers": message.mcp_servers,
        "status": message.status,
        "error": message.error,
        "error_code": message.error_code,
        "finish_reason": message.finish_reason,
        "usage": message.usage,
        "tools": message.tools,
        "client_id": message.client_id,
        "created_at": message.created_at.isoformat(),
        "finished_at": message.finished_at.isoformat() if message.finished_at else None,
    }


def conversation_history(*, ref: ConversationRef) -> dict[str, Any]:
    """Return the owner's conversation and its messages, oldest first; an empty one if there is none."""
    conversation = Conversation.objects.filter(owner_key=ref.owner_key, session_id=ref.session_id).first()
    if conversation is None:
        return {
            "conversation": {
                "session_id": ref.session_id,
                "title": "",
                "model": ChatModel.objects.default_name() or "",
                "mcp_servers": [],
                "created_at": None,
            },
            "messages": [],
        }
    messages = Message.objects.history(conversation)
    return {
        "conversation": {
            "session_id": conversation.session_id,
            "title": conversation.title,
            "model": conversation.model,
            "mcp_servers": conversation.mcp_servers,
            "created_at": conversation.created_at.isoformat(),
        },
        "messages": [message_as_dict(message) for message in messages],
    }


def chat_page_options() -> dict[str, Any]:
    """The models and MCP presets the page offers."""
    return {
        "models": [
            {"name": m.name, "label": m.label, "is_default": m.is_default}
            for m in ChatModel.objects.enabled()
        ],
        "mcp_presets": [
            {"label": p.label, "target": p.target, "description": p.description}
            for p in MCPServerPreset.objects.enabled()
        ],
    }


def reply_stored(*, reply_id: int) -> Message | None:
    """The stored row of a reply (to end a follower whose writer is gone, or to resend a span)."""
    return (
        Message.objects.filter(pk=reply_id, role=Message.Role.ASSISTANT)
        .select_related("conversation")
        .first()
    )


def conversation_streaming_reply(*, ref: ConversationRef) -> tuple[int, str] | None:
    """The id and lease owner (an instance id) of the reply streaming in a conversation, if any."""
    return (
        Message.objects.streaming()
        .filter(conversation__owner_key=ref.owner_key, conversation__session_id=ref.session_id)
        .values_list("pk", "lease_owner")
        .order_by("-pk")
        .first()
    )
