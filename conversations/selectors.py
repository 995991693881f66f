"""Reads: what the page and the socket show of conversations and models."""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import Q

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


def conversations_of_owner(
    *, owner_key: str, query: str = "", limit: int = 30, offset: int = 0
) -> list[dict[str, Any]]:
    """The owner's conversations, most recently active first; `query` matches titles and message text
    (full-text search on Postgres, a plain substring filter elsewhere)."""
    conversations = Conversation.objects.filter(owner_key=owner_key)
    if query:
        messages = Message.objects.filter(conversation__owner_key=owner_key)
        if connection.vendor == "postgresql":
            # Full-text search: word stems ("recipes" finds "recipe"), ranked by Postgres, not substrings.
            vector = SearchVector("content", config="english")
            matching = messages.annotate(search=vector).filter(search=SearchQuery(query, config="english"))
        else:
            matching = messages.filter(content__icontains=query)
        conversations = conversations.filter(
            Q(title__icontains=query) | Q(pk__in=matching.values("conversation_id"))
        )
    return [
        {
            "session_id": conversation.session_id,
            "title": conversation.title or "New chat",
            "model": conversation.model,
            "updated_at": conversation.updated_at.isoformat(),
        }
        for conversation in conversations.order_by("-updated_at", "-pk")[offset : offset + limit]
    ]


def conversation_export(*, owner_key: str, session_id: str) -> dict[str, Any] | None:
    """The owner's conversation with every message, for download; None when they have none of that id."""
    conversation = Conversation.objects.filter(owner_key=owner_key, session_id=session_id).first()
    if conversation is None:
        return None
    return {
        "session_id": conversation.session_id,
        "title": conversation.title,
        "model": conversation.model,
        "created_at": conversation.created_at.isoformat(),
        "messages": [message_as_dict(message) for message in Message.objects.history(conversation)],
    }


def conversation_as_markdown(export: dict[str, Any]) -> str:
    """A conversation export as a Markdown document (the text as written, under role headings)."""
    lines = [f"# {export['title'] or export['session_id']}", ""]
    for message in export["messages"]:
        who = "You" if message["role"] == "user" else f"Assistant ({message['model']})"
        lines += [f"## {who} · {message['created_at']}", "", message["content"], ""]
        if message["status"] in ("interrupted", "error"):
            lines += [f"_{message['status']}: {message['error'] or 'stopped before the end'}_", ""]
    return "\n".join(lines)
