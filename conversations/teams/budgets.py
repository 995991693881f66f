"""Budgets: what a signed-in user may still spend in the current period, by the rule below, read from the
usage ledger (so deleting a chat frees nothing) and from their replies still streaming.

The rule (docs/teams.md, "Budgets"):
- A user's own budgets, when they have any, are their allowance, and their groups' are not read. Each
  applies: with a day's and a month's, both must have room.
- Else their groups': a group's budget caps each member's own spending (it is not a pool the members
  share). The user may send while any of their groups has room in all of its budgets: the most
  generous group governs. A group with no budget gives no cap, so belonging to one unbudgeted group
  means no group cap, and a user in no group has none.
- Spent: the ledger's entries of the user since the period began (UTC midnight, or the 1st of the month
  UTC): tokens as it counts them, money as it priced them (the catalog's prices, USD, when each call
  ended); and the user's replies still streaming, their text so far estimated at CHARS_PER_TOKEN
  characters a token, priced at their model's output price, as the daily quota counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Q, Sum
from django.db.models.functions import Length
from django.utils import timezone

from ..costs import PER_MILLION
from ..exceptions import BudgetExceeded
from ..models import Budget, ChatModel, Message, UsageEntry
from ..owners import Owner
from ..usage_ledger import tokens_estimate

# The page tells the user what is left once the tightest cap has less than this share of it left.
LOW_SHARE = Decimal("0.2")


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The current period's start and end (UTC): a day from midnight, a month from its 1st."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == Budget.Period.DAY:
        return day, day + timedelta(days=1)
    month = day.replace(day=1)
    return month, (month + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True, slots=True)
class Standing:
    """One budget against what its subject's user spent in its current period."""

    budget: Budget
    spent: Decimal
    resets_at: datetime

    @property
    def left(self) -> Decimal:
        return max(self.budget.amount - self.spent, Decimal(0))

    @property
    def share_left(self) -> Decimal:
        """What is left as a share of the cap, 0 to 1 (a cap of 0 has nothing left)."""
        return self.left / self.budget.amount if self.budget.amount > 0 else Decimal(0)

    @property
    def spent_up(self) -> bool:
        return self.spent >= self.budget.amount


@dataclass(frozen=True, slots=True)
class Allowance:
    """What governs a user's spending now: their own budgets, or their most generous group's."""

    subject: str  # "user" for their own, else "group <name>"
    standings: tuple[Standing, ...]

    @property
    def tightest(self) -> Standing:
        return min(self.standings, key=lambda standing: standing.share_left)

    @property
    def spent_up(self) -> bool:
        return any(standing.spent_up for standing in self.standings)

    @property
    def resets_at(self) -> datetime:
        """When every spent budget of it has renewed (the end of the latest such period); while none is
        spent, when the tightest renews."""
        spent = [standing.resets_at for standing in self.standings if standing.spent_up]
        return max(spent) if spent else self.tightest.resets_at

    @property
    def low(self) -> bool:
        return self.tightest.share_left < LOW_SHARE


def user_allowance(*, user_id: int, now: datetime | None = None) -> Allowance | None:
    """The user's allowance by the rule above; None when no budget caps them. One query for a user no
    budget names; two to four more otherwise."""
    budgets = list(Budget.objects.filter(Q(user_id=user_id) | Q(group__user=user_id)).select_related("group"))
    own = [budget for budget in budgets if budget.user_id == user_id]
    by_group: dict[int, list[Budget]] = {}
    for budget in budgets:
        if budget.group_id is not None:
            by_group.setdefault(budget.group_id, []).append(budget)
    if not own and not by_group:
        return None
    if not own:
        member_of = get_user_model().groups.through.objects.filter(user_id=user_id).values_list("group_id")
        if {group_id for (group_id,) in member_of} - by_group.keys():
            return None  # a group without a budget: no group cap
    now = now or timezone.now()
    spent = _spent(user_id=user_id, periods={budget.period for budget in budgets}, now=now)

    def standings_of(subject_budgets: list[Budget]) -> tuple[Standing, ...]:
        return tuple(
            Standing(
                budget=budget,
                spent=spent[budget.unit, budget.period],
                resets_at=period_bounds(budget.period, now)[1],
            )
            for budget in subject_budgets
        )

    if own:
        return Allowance(subject="user", standings=standings_of(own))
    groups = [
        Allowance(subject=f"group {subject_budgets[0].group.name}", standings=standings_of(subject_budgets))
        for subject_budgets in by_group.values()
    ]
    with_room = [allowance for allowance in groups if not allowance.spent_up]
    if with_room:
        return max(with_room, key=lambda allowance: allowance.tightest.share_left)
    return min(groups, key=lambda allowance: allowance.resets_at)


def _spent(*, user_id: int, periods: set[str], now: datetime) -> dict[tuple[str, str], Decimal]:
    """What the user spent in each period's current span, per (unit, period): one query over the ledger
    (its owner and time index), one over their replies streaming, and their models' prices."""
    bounds = {period: period_bounds(period, now) for period in periods}
    sums = {}
    for period, (start, end) in bounds.items():
        within = Q(created_at__gte=start, created_at__lt=end)
        sums[f"{Budget.Unit.TOKENS}_{period}"] = Sum("total_tokens", filter=within)
        sums[f"{Budget.Unit.USD}_{period}"] = Sum("cost", filter=within)
    owner_key = Owner(user_id=user_id).key
    earliest = min(start for start, _ in bounds.values())
    ledger = UsageEntry.objects.filter(owner_key=owner_key, created_at__gte=earliest).aggregate(**sums)
    streaming_tokens, streaming_cost = _streaming_spent(owner_key)
    return {
        (unit, period): Decimal(ledger[f"{unit}_{period}"] or 0)
        + (streaming_tokens if unit == Budget.Unit.TOKENS else streaming_cost)
        for unit in Budget.Unit.values
        for period in periods
    }


def _streaming_spent(owner_key: str) -> tuple[int, Decimal]:
    """The owner's replies still streaming: their tokens so far, estimated from their text, and those
    tokens at their models' output prices (an unpriced model's cost nothing yet)."""
    chars_by_model = dict(
        Message.objects.streaming()
        .filter(conversation__owner_key=owner_key)
        .order_by()
        .values("model")
        .annotate(chars=Sum(Length("content")))
        .values_list("model", "chars")
    )
    if not chars_by_model:
        return 0, Decimal(0)
    prices = dict(
        ChatModel.objects.filter(name__in=chars_by_model, price_output__isnull=False).values_list(
            "name", "price_output"
        )
    )
    tokens = {model: tokens_estimate(chars or 0) for model, chars in chars_by_model.items()}
    cost = sum((tokens[model] * price / PER_MILLION for model, price in prices.items()), Decimal(0))
    return sum(tokens.values()), cost


def budgeted_users(user_ids: set[int]) -> set[int]:
    """Those of the users a budget names, their own or a group's (one query): a turn batch asks once,
    then checks only them."""
    if not user_ids:
        return set()
    named = Budget.objects.filter(Q(user_id__in=user_ids) | Q(group__user__in=user_ids))
    return {
        user_id
        for pair in named.values_list("user_id", "group__user")
        for user_id in pair
        if user_id in user_ids
    }


def budget_check(*, user_id: int | None) -> None:
    """Raise BudgetExceeded when the user's allowance is spent (an anonymous owner has no budget)."""
    if user_id is None:
        return
    allowance = user_allowance(user_id=user_id)
    if allowance is None or not allowance.spent_up:
        return
    # The spent budget the refusal waits for: the one whose period ends last (a spent day's budget
    # under a spent month's renews first, and frees nothing then).
    waited_for = max(
        (standing for standing in allowance.standings if standing.spent_up), key=lambda s: s.resets_at
    )
    resets_at, budget = waited_for.resets_at, waited_for.budget
    whose = "Your budget" if allowance.subject == "user" else f"The budget of your {allowance.subject}"
    seconds = int((resets_at - timezone.now()).total_seconds()) + 1
    raise BudgetExceeded(
        f"{whose} of {budget.amount_text} {budget.get_period_display()} is spent;"
        f" it resets at {resets_at:%Y-%m-%d %H:%M} UTC.",
        resets_at=iso_utc(resets_at),
        retry_after=max(seconds, 1),
    )


def iso_utc(moment: datetime) -> str:
    """`2026-12-08T00:00:00Z`: ISO 8601 in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def allowance_as_dict(allowance: Allowance | None) -> dict[str, object] | None:
    """The allowance as the page reads it: its tightest cap, what is left of it, when it resets, and
    whether it runs low (under LOW_SHARE left); None when no budget caps the user."""
    if allowance is None:
        return None
    tightest = allowance.tightest
    budget = tightest.budget
    tokens = budget.unit == Budget.Unit.TOKENS
    return {
        "subject": allowance.subject,
        "unit": budget.unit,
        "period": budget.period,
        "amount": int(budget.amount) if tokens else str(budget.amount.quantize(Decimal("0.01"))),
        "left": int(tightest.left) if tokens else str(tightest.left.quantize(Decimal("0.01"))),
        "resets_at": iso_utc(allowance.resets_at),
        "low": allowance.low,
        "spent_up": allowance.spent_up,
    }
