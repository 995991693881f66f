"""API keys: a user's keys to the OpenAI-compatible API (/v1/), kept as a SHA-256 of the key and the
key's first characters, which name it on every page and find it on every request."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

# Every key starts with this, so a leaked one is recognised (by its owner, by secret scanners).
API_KEY_PREFIX = "dck_"
# The first characters of a key its row keeps in clear: the prefix and 8 of the secret's.
API_KEY_SHOWN_CHARS = len(API_KEY_PREFIX) + 8


class ApiKey(models.Model):
    """One key of a user's. `scope` empty: all the user may use; else the agent slugs and model ids the
    key may name. A revoked or expired key is refused on the next request it makes."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True, help_text="What the key is for.")
    prefix = models.CharField(max_length=API_KEY_SHOWN_CHARS, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.JSONField(
        default=list,
        blank=True,
        help_text="Empty: all the user may use. Else the agent slugs and model ids it may name: "
        '["helper", "openai/gpt-5.1"].',
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never.")
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests a minute; empty: the server's CHAT_API_KEY_RATE_LIMIT."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})" if self.name else f"{self.prefix}…"

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
