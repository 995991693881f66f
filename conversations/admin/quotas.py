"""Per-user daily token quotas (the default is CHAT_DAILY_TOKEN_QUOTA)."""

from __future__ import annotations

from django.contrib import admin

from ..models import UserQuota
from .list_editable import LabelledListEditableAdmin


@admin.register(UserQuota)
class UserQuotaAdmin(LabelledListEditableAdmin):
    list_display = ["user", "daily_tokens"]
    list_editable = ["daily_tokens"]
    search_fields = ["user__username", "user__email"]
    raw_id_fields = ["user"]  # select2's autocomplete box has no accessible name until something is picked
