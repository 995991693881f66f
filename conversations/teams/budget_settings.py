"""Budgets set and cleared (by `manage.py budget_set`; the admin edits the same rows): one per subject,
a group or a user, and period."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import Group
from django.db import transaction

from ..models import Budget


@transaction.atomic
def budget_set(
    *, group: Group | None = None, user_id: int | None = None, unit: str, amount: Decimal, period: str
) -> Budget:
    """Set the budget of `group` (each member's cap) or of the user for `period`, replacing the one it
    had for that period; return it. Raise ValidationError for an amount or unit it cannot be."""
    subject = {"group": group} if group is not None else {"user_id": user_id}
    budget = Budget.objects.select_for_update().filter(**subject, period=period).first() or Budget(
        **subject, period=period
    )
    budget.unit, budget.amount = unit, amount
    budget.full_clean(validate_unique=False, validate_constraints=False)
    budget.save()
    return budget


def budget_clear(*, group: Group | None = None, user_id: int | None = None, period: str | None = None) -> int:
    """Remove the budget of `group` or of the user for `period` (every period when None); return how many."""
    subject = {"group": group} if group is not None else {"user_id": user_id}
    budgets = Budget.objects.filter(**subject)
    if period is not None:
        budgets = budgets.filter(period=period)
    return budgets.delete()[0]
