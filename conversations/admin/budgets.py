"""Budgets per group and per user (teams/budgets.py), editable, with the spending against them this
period below the list."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from ..models import Budget
from ..teams.budget_spending import groups_spending, users_spending


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ["__str__", "group", "user", "unit", "amount", "period"]
    list_filter = ["period", "unit", "group"]
    search_fields = ["group__name", "user__username"]
    # A user by id with Django's lookup, a group from a plain list: select2's autocomplete box has no
    # accessible name until something is picked.
    raw_id_fields = ["user"]
    list_select_related = ["group", "user"]
    change_list_template = "admin/conversations/budget/change_list.html"

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        spending = {"groups_spending": groups_spending(), "users_spending": users_spending()}
        return super().changelist_view(request, {**(extra_context or {}), **spending})
