"""The group memberships single sign-on gave, which the next sign-in may take away; read only (a
membership given by hand is the user's or the group's page)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from ..models import ProviderGroupGrant


@admin.register(ProviderGroupGrant)
class ProviderGroupGrantAdmin(admin.ModelAdmin):
    list_display = ["user", "group", "granted_at"]
    list_filter = ["group"]
    search_fields = ["user__username", "group__name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
