"""Spending against budgets in the current period, as the admin shows it: per group (each member against
the group's cap) and per user (their allowance by the rule of budgets.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Q, Sum
from django.utils import timezone

from ..models import Budget, UsageEntry
from .budgets import Allowance, period_bounds, user_allowance

# The per-user table reads each user's allowance on its own (a few queries each): at most this many.
USERS_SHOWN = 200


@dataclass(frozen=True, slots=True)
class GroupSpending:
    """A group's budget against its members' spending this period (ended calls, from the ledger)."""

    budget: Budget
    members: int
    highest: Decimal  # the most one member spent
    total: Decimal  # all members together (a budget caps each, not this)
    spent_up: int  # members at or over the cap


def groups_spending(*, now: datetime | None = None) -> list[GroupSpending]:
    """Every group budget, by group name then period: one ledger query each."""
    now = now or timezone.now()
    rows = []
    for budget in (
        Budget.objects.filter(group__isnull=False).select_related("group").order_by("group__name", "period")
    ):
        start, end = period_bounds(budget.period, now)
        column = "total_tokens" if budget.unit == Budget.Unit.TOKENS else "cost"
        members = get_user_model().objects.filter(groups=budget.group_id)
        spent = (
            UsageEntry.objects.filter(user__in=members, created_at__gte=start, created_at__lt=end)
            .order_by()
            .values("user_id")
            .annotate(spent=Sum(column))
            .values_list("spent", flat=True)
        )
        spent = [Decimal(value or 0) for value in spent]
        rows.append(
            GroupSpending(
                budget=budget,
                members=members.count(),
                highest=max(spent, default=Decimal(0)),
                total=sum(spent, Decimal(0)),
                spent_up=sum(1 for value in spent if value >= budget.amount),
            )
        )
    return rows


def users_spending(*, now: datetime | None = None) -> list[tuple[str, Allowance]]:
    """Each user a budget caps (their own, or through their groups), by name, with their allowance:
    at most USERS_SHOWN."""
    users = (
        get_user_model()
        .objects.filter(Q(chat_budgets__isnull=False) | Q(groups__chat_budgets__isnull=False))
        .distinct()
        .order_by("username")
        .values_list("pk", "username")[:USERS_SHOWN]
    )
    now = now or timezone.now()
    shown = []
    for user_id, username in users:
        allowance = user_allowance(user_id=user_id, now=now)
        if allowance is not None:
            shown.append((username, allowance))
    return shown
