"""System checks for this app's settings and database (`manage.py check`; also run by `migrate`, so by
serve.sh and make run; the database's only when a command names databases, as `migrate` does)."""

from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import connections

METRICS_OPEN = "conversations.W001"
CREDENTIALS_KEY_DERIVED = "conversations.W002"
CREDENTIALS_KEY_BAD = "conversations.E001"
PGVECTOR_MISSING = "conversations.W003"


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


@register(Tags.security)
def credentials_keys_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """An error for a key in CHAT_CREDENTIALS_KEYS that is not a Fernet key; a warning when production
    seals MCP credentials with the key derived from SECRET_KEY (changing it would make them unreadable)."""
    problems: list[CheckMessage] = []
    for position, key in enumerate(settings.CHAT_CREDENTIALS_KEYS, start=1):
        try:
            Fernet(key)
        except ValueError:
            problems.append(
                Error(
                    f"Key {position} of CHAT_CREDENTIALS_KEYS is not a Fernet key.",
                    hint='Make one with: python -c "from cryptography.fernet import Fernet; '
                    'print(Fernet.generate_key().decode())"',
                    id=CREDENTIALS_KEY_BAD,
                )
            )
    if not settings.DEBUG and not settings.CHAT_CREDENTIALS_KEYS:
        problems.append(
            Warning(
                "MCP credentials are sealed with a key derived from SECRET_KEY.",
                hint="Set CHAT_CREDENTIALS_KEYS, so that changing SECRET_KEY keeps them readable.",
                id=CREDENTIALS_KEY_DERIVED,
            )
        )
    return problems


def pgvector_available(alias: str) -> bool:
    """Return True when the database `alias` can create the pgvector extension (`CREATE EXTENSION vector`)."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        return cursor.fetchone() is not None


def pgvector_missing(alias: str, level: type[CheckMessage] = Warning) -> CheckMessage:
    """The message for a database without pgvector, at `level`: a warning while nothing needs it yet;
    knowledge bases will need it, and make it an error."""
    return level(
        f"The database {alias!r} has no pgvector extension: knowledge bases will need it.",
        hint="Install pgvector on its server (docs/operations.md, 'pgvector'): make run's embedded Postgres "
        "has it.",
        id=PGVECTOR_MISSING,
    )


@register(Tags.database)
def pgvector_check(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Return a warning for each database checked (`migrate`, `check --database`) that lacks pgvector."""
    return [pgvector_missing(alias) for alias in databases or () if not pgvector_available(alias)]
