"""Who may use an agent or a chat model, as the admin shows and picks it: its groups (teams/access)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import ManyToManyField, Model, QuerySet
from django.http import HttpRequest


class GroupCheckboxesAdmin(admin.ModelAdmin):
    """An admin whose rows' `groups` are picked as labelled checkboxes: Django's two-list box
    (`filter_horizontal`) puts ARIA attributes on its icons that screen readers are not allowed."""

    def formfield_for_manytomany(self, db_field: ManyToManyField, request: HttpRequest, **kwargs: Any):
        if db_field.name == "groups":
            kwargs["widget"] = forms.CheckboxSelectMultiple
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class GroupsAdmin(GroupCheckboxesAdmin):
    """An admin of rows limited to groups: picked as labelled checkboxes, and named in the list."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("groups")  # one query for the whole list

    @admin.display(description="who may use it")
    def who_may_use(self, row: Model) -> str:
        names = sorted(group.name for group in row.groups.all())
        return ", ".join(names) if names else "everyone"
