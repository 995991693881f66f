"""Uploads, read-only: what an operator may see of them (never their content) and remove."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from ..models import Attachment


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    """Uploads, read-only: what an operator may see of them (never their content here) and remove."""

    list_display = ["name", "kind", "size", "owner", "conversation", "created_at"]
    list_filter = ["kind", "created_at"]
    search_fields = ["name", "owner_key"]
    readonly_fields = [
        "id",
        "name",
        "kind",
        "content_type",
        "size",
        "owner_key",
        "conversation",
        "pages",
        "width",
        "height",
        "created_at",
    ]
    fields = readonly_fields
    list_select_related = ["conversation"]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).with_owner_name()

    @admin.display(description="owner", ordering="owner_key")
    def owner(self, attachment: Attachment) -> str:
        """The user's name, "anonymous" for a browser session (its key is a digest), else the key."""
        if attachment.owner_key.startswith("s:"):
            return "anonymous"
        return attachment.owner_name or attachment.owner_key

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
