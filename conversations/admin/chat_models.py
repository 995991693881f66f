"""The chat models users may pick: the API's catalog synced into them, and which are offered."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from ..agents import catalog
from ..models import ChatModel
from .groups import GroupsAdmin
from .list_editable import LabelledListEditableAdmin


@admin.register(ChatModel)
class ChatModelAdmin(LabelledListEditableAdmin, GroupsAdmin):
    list_display = [
        "label",
        "name",
        "who_may_use",
        "enabled",
        "is_default",
        "position",
        "listed",
        "input_token_limit",
        "price_input",
        "price_output",
        "synced_at",
    ]
    list_editable = ["enabled", "is_default", "position"]
    list_filter = ["enabled", "listed", "groups"]
    search_fields = ["name", "label"]
    readonly_fields = ["listed", "synced_at"]
    actions = ["disable", "catalog_sync"]

    @admin.action(description="Sync the catalog from the API (capabilities, limits, prices)")
    def catalog_sync(self, request: HttpRequest, queryset) -> None:
        try:
            result = catalog.catalog_sync(catalog.catalog_fetch())
        except catalog.CatalogUnavailable as exc:
            self.message_user(request, f"The catalog was not synced: {exc}", messages.ERROR)
            return
        self.message_user(
            request,
            f"{len(result.updated)} model(s) updated, {len(result.added)} added (disabled), "
            f"{len(result.unlisted)} no longer listed by the API.",
            messages.SUCCESS,
        )

    @admin.action(description="Disable selected models (replies in flight finish)")
    def disable(self, request: HttpRequest, queryset) -> None:
        count = queryset.update(enabled=False, is_default=False)
        self.message_user(
            request, f"{count} model(s) disabled; new messages can no longer pick them.", messages.SUCCESS
        )
