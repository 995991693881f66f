"""Share links: what is shared, since when and for whom; an operator may revoke them."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from ..models import Share


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    """Share links: what is shared, since when, and for whom; revoking one deletes it (its URL then 404s)."""

    list_display = ["title_shown", "conversation_link", "login_required", "message_count", "updated_at"]
    list_filter = ["login_required", "updated_at"]
    search_fields = ["title", "conversation__session_id", "conversation__owner_key"]
    list_select_related = ["conversation"]
    readonly_fields = ["token", "conversation", "title", "login_required", "created_at", "updated_at"]
    exclude = ["messages"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # only an owner shares

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="title", ordering="title")
    def title_shown(self, row: Share) -> str:
        return row.title or "(untitled)"

    @admin.display(description="messages")
    def message_count(self, row: Share) -> int:
        return len(row.messages)

    @admin.display(description="conversation")
    def conversation_link(self, row: Share) -> str:
        url = reverse("admin:conversations_conversation_change", args=[row.conversation_id])
        return format_html('<a href="{}">{}</a>', url, row.conversation.session_id)

    @admin.action(description="Revoke the selected share links", permissions=["delete"])
    def revoke(self, request: HttpRequest, queryset) -> None:
        revoked, _ = queryset.delete()
        self.message_user(request, f"Revoked {revoked} share link(s): their URLs now answer 404.")
