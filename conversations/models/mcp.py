"""MCP servers an operator presets, and a user's own credentials for them (sealed)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from ..validators import CREDENTIAL_NAME_RE, validate_mcp_target


class MCPServerPresetQuerySet(models.QuerySet):
    def enabled(self) -> MCPServerPresetQuerySet:
        """Presets the page offers, in the admin's order."""
        return self.filter(enabled=True).order_by("position", "label")


class MCPServerPreset(models.Model):
    label = models.CharField(max_length=100)
    target = models.CharField(
        max_length=2048,
        validators=[validate_mcp_target],
        help_text="A marketplace slug like org/name (optionally @version) or an https:// URL.",
    )
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True, db_index=True)
    position = models.PositiveIntegerField(default=0)
    # Credentials the server is given on every request (API keys, tokens), sealed (see sealing.py):
    # only the admin's form writes them, and nothing shows them back.
    credentials_sealed = models.TextField(blank=True, default="", editable=False)
    user_credentials = models.BooleanField(
        default=False,
        help_text="Each signed-in user adds their own credentials on the chat page (used instead of "
        "the shared ones); without them, the server cannot be used.",
    )
    credential_names = models.JSONField(
        default=list,
        blank=True,
        help_text='The values a user is asked for, e.g. ["api_key"].',
    )

    objects = MCPServerPresetQuerySet.as_manager()

    class Meta:
        ordering = ["position", "label"]
        verbose_name = "MCP server preset"

    def __str__(self) -> str:
        return f"{self.label} ({self.target})"

    @property
    def has_shared_credentials(self) -> bool:
        return bool(self.credentials_sealed)

    def clean(self) -> None:
        names = self.credential_names
        if not isinstance(names, list) or not all(
            isinstance(name, str) and CREDENTIAL_NAME_RE.fullmatch(name) for name in names
        ):
            raise ValidationError({"credential_names": 'A list of names such as ["api_key", "token"].'})
        if self.user_credentials and not names:
            raise ValidationError({"credential_names": "Name the values each user is asked for."})


class MCPCredential(models.Model):
    """A signed-in user's own credentials for an MCP preset that asks for them, sealed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    preset = models.ForeignKey(MCPServerPreset, on_delete=models.CASCADE, related_name="user_credentials_set")
    sealed = models.TextField(editable=False)
    names = models.JSONField(default=list, editable=False, help_text="The names of the values, for display.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "MCP credential"
        constraints = [
            models.UniqueConstraint(fields=["user", "preset"], name="one_mcp_credential_per_user_and_preset")
        ]

    def __str__(self) -> str:
        return f"{self.preset.label} for user {self.user_id}"
