"""Per-user daily token quotas (the default is CHAT_DAILY_TOKEN_QUOTA)."""

from __future__ import annotations

from django.contrib import admin

from ..models import UserQuota


@admin.register(UserQuota)
class UserQuotaAdmin(admin.ModelAdmin):
    list_display = ["user", "daily_tokens"]
    list_editable = ["daily_tokens"]
    search_fields = ["user__username", "user__email"]
    autocomplete_fields = ["user"]
