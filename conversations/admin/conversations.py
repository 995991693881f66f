"""Conversations and their messages, read-only: what an operator may look into."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from ..models import Conversation, Message
from .previews import TITLE_CHARS, preview


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["created_at", "role", "status", "model", "content_preview", "total_tokens", "error_preview"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="content")
    def content_preview(self, message: Message) -> str:
        return preview(message.content)

    @admin.display(description="error")
    def error_preview(self, message: Message) -> str:
        return preview(message.error)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["session_id", "title_preview", "user", "model", "updated_at"]
    list_filter = ["source", "model", "messages__status", "updated_at"]
    search_fields = ["session_id", "title", "user__username", "messages__content"]
    # current_message too: an editable select would list every message of every conversation.
    readonly_fields = [
        "session_id",
        "owner_key",
        "source",
        "title_source",
        "user",
        "owner_session_key",
        "current_message",
        "mcp_servers_listed",
        "settings",
        "created_at",
        "updated_at",
    ]
    exclude = ["mcp_servers"]
    inlines = [MessageInline]

    @admin.display(description="title", ordering="title")
    def title_preview(self, conversation: Conversation) -> str:
        return preview(conversation.title, TITLE_CHARS)

    @admin.display(description="MCP servers")
    def mcp_servers_listed(self, conversation: Conversation) -> str:
        return ", ".join(conversation.mcp_servers) or "none"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a conversation is made by its first message, never by hand

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user").distinct()


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "conversation_title",
        "role",
        "status",
        "model",
        "total_tokens",
        "cost",
        "created_at",
    ]
    list_filter = ["status", "role", "model"]
    search_fields = ["content", "conversation__session_id"]
    list_select_related = ["conversation"]

    @admin.display(description="conversation", ordering="conversation__title")
    def conversation_title(self, message: Message) -> str:
        return preview(str(message.conversation), TITLE_CHARS)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
