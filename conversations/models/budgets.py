"""Budgets: a cap on what a group's members or one user may spend, in tokens or in money, per UTC day or
calendar month (the rule that reads them: teams/budgets.py)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q


class Budget(models.Model):
    """A cap per period on a user's spending, or on each member's of a group (never a pool the members
    share). One per subject and period: a day's and a month's may both stand, and each applies."""

    class Unit(models.TextChoices):
        TOKENS = "tokens", "tokens"
        USD = "usd", "USD"

    class Period(models.TextChoices):
        DAY = "day", "per UTC day"
        MONTH = "month", "per calendar month (UTC)"

    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="chat_budgets"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="chat_budgets"
    )
    unit = models.CharField(max_length=8, choices=Unit.choices)
    amount = models.DecimalField(
        max_digits=20,
        decimal_places=8,
        validators=[MinValueValidator(0)],
        help_text="Tokens (a whole number), or USD at the catalog's prices. 0 allows nothing.",
    )
    period = models.CharField(max_length=8, choices=Period.choices)

    class Meta:
        verbose_name = "budget"
        constraints = [
            models.CheckConstraint(
                condition=Q(group__isnull=True, user__isnull=False)
                | Q(group__isnull=False, user__isnull=True),
                name="budget_of_a_group_or_a_user",
            ),
            models.UniqueConstraint(
                fields=["group", "period"],
                condition=Q(group__isnull=False),
                name="one_budget_per_group_period",
            ),
            models.UniqueConstraint(
                fields=["user", "period"], condition=Q(user__isnull=False), name="one_budget_per_user_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject}: {self.amount_text} {self.get_period_display()}"

    @property
    def subject(self) -> str:
        """Whom it caps, as the admin and the page name them: `group NAME` or `user NAME`."""
        return f"group {self.group.name}" if self.group_id else f"user {self.user.get_username()}"

    @property
    def amount_text(self) -> str:
        if self.unit == self.Unit.TOKENS:
            return f"{int(self.amount):,} token{'' if self.amount == 1 else 's'}"
        return f"{self.amount:.2f} USD"

    def clean(self) -> None:
        if (self.group_id is None) == (self.user_id is None):
            raise ValidationError("A budget caps either a group's members or one user: choose one.")
        if self.unit == self.Unit.TOKENS and self.amount is not None and self.amount != int(self.amount):
            raise ValidationError({"amount": "A budget in tokens is a whole number."})
