"""System checks for this app's settings (`manage.py check`; also run by `migrate`, so by serve.sh)."""

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

METRICS_OPEN = "conversations.W001"


@register(Tags.security)
def metrics_token_check(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Return a warning when /metrics is open to anyone: DEBUG off and no CHAT_METRICS_TOKEN."""
    if settings.DEBUG or settings.CHAT_METRICS_TOKEN:
        return []
    return [
        Warning(
            "/metrics is open to anyone who reaches an instance's port.",
            hint="Set CHAT_METRICS_TOKEN and give the scraper `Authorization: Bearer <token>`.",
            id=METRICS_OPEN,
        )
    ]
