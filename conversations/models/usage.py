"""What was spent: the usage ledger (one row per paid call), its daily sums, and per-user quotas."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class UserQuota(models.Model):
    """A user's own daily token quota, instead of CHAT_DAILY_TOKEN_QUOTA."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_quota")
    daily_tokens = models.PositiveIntegerField(help_text="Tokens per UTC day; 0 means unlimited.")

    class Meta:
        verbose_name = "user quota"

    def __str__(self) -> str:
        return f"{self.user}: {self.daily_tokens} tokens/day"


class UsageEntry(models.Model):
    """One billed call, written when it ends and never changed or deleted after: a reply's end, a title,
    an OCR read, an embeddings request. Usage, cost, charts and the daily token quota are read from here,
    so deleting a conversation (by hand or by retention) takes none of its usage with it: its id is a
    plain value."""

    class Kind(models.TextChoices):
        REPLY = "reply"
        TITLE = "title"
        OCR = "ocr"
        EMBEDDING = "embedding"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    owner_key = models.CharField(max_length=80, help_text="The owner's namespace when it was billed.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    conversation_id = models.BigIntegerField(null=True, blank=True, help_text="Kept after it is deleted.")
    message_id = models.BigIntegerField(null=True, blank=True, help_text="The reply, for a reply's entry.")
    model = models.CharField(max_length=200, blank=True)
    agent_slug = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True, help_text="The pages an OCR call read.")
    cost = models.DecimalField(max_digits=16, decimal_places=8, null=True, blank=True, help_text="USD.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "usage entry"
        verbose_name_plural = "usage entries"
        indexes = [models.Index(fields=["owner_key", "created_at"], name="usage_owner_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["message_id"], condition=Q(kind="reply"), name="one_usage_entry_per_reply"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.owner_key} {self.model} {self.total_tokens}"


USAGE_SUMS = ["replies", "prompt_tokens", "completion_tokens", "total_tokens", "cost"]


class DailyUsageQuerySet(models.QuerySet):
    """The usage page's questions, each one grouped query over whatever rows the filters left."""

    def totals(self) -> dict[str, object]:
        """The sums of USAGE_SUMS over the rows (None for an empty set; cost None while nothing is priced)."""
        return self.aggregate(**{name: models.Sum(name) for name in USAGE_SUMS})

    def grouped(self, *fields: str) -> DailyUsageQuerySet:
        """One row per distinct `fields`, with the sums of USAGE_SUMS; unordered (callers order it)."""
        return self.order_by().values(*fields).annotate(**{name: models.Sum(name) for name in USAGE_SUMS})

    def per_day(self) -> DailyUsageQuerySet:
        """Sums per day, oldest first."""
        return self.grouped("day").order_by("day")

    def per_model(self) -> DailyUsageQuerySet:
        """Sums per model, the costliest first (then the most tokens)."""
        return self.grouped("model").order_by(
            models.F("cost").desc(nulls_last=True), "-total_tokens", "model"
        )

    def per_user(self) -> DailyUsageQuerySet:
        """Sums per user, every anonymous session together (`user__username` None), the costliest first."""
        return self.grouped("user__username").order_by(
            models.F("cost").desc(nulls_last=True), "-total_tokens", "user__username"
        )


class DailyUsage(models.Model):
    """Replies, tokens and cost per day, owner and model: a database view over the usage ledger
    (UsageEntry), read-only; `replies` counts reply ends, the sums every billed call."""

    day = models.DateField()
    owner_key = models.CharField(max_length=80)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING, related_name="+"
    )
    model = models.CharField(max_length=200)
    replies = models.PositiveIntegerField()
    prompt_tokens = models.PositiveBigIntegerField()
    completion_tokens = models.PositiveBigIntegerField()
    total_tokens = models.PositiveBigIntegerField()
    cost = models.DecimalField(max_digits=20, decimal_places=8, null=True)

    objects = DailyUsageQuerySet.as_manager()

    class Meta:
        managed = False
        db_table = "conversations_dailyusage"
        ordering = ["-day", "owner_key", "model"]
        verbose_name = "daily usage"
        verbose_name_plural = "daily usage"

    def __str__(self) -> str:
        return f"{self.day} {self.owner_key} {self.model}"
