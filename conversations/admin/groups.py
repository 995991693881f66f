"""Who may use an agent or a chat model, as the admin shows and picks it: its groups (teams/access)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest


class GroupsAdmin(admin.ModelAdmin):
    """An admin of rows limited to groups: picked in a two-list box, and named in the list."""

    filter_horizontal = ["groups"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("groups")  # one query for the whole list

    @admin.display(description="who may use it")
    def who_may_use(self, row: Model) -> str:
        names = sorted(group.name for group in row.groups.all())
        return ", ".join(names) if names else "everyone"
