"""Readiness checks: can this instance serve a chat right now? Each check reports its own latency."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import connection

from . import instance as instances
from . import upstream


def _timed(check: Callable[[], str | None]) -> dict[str, Any]:
    """Run one check; return {"ok", "latency_ms", and "error" if it failed}."""
    started = time.perf_counter()
    try:
        problem = check()
    except Exception as exc:  # any failure of a dependency is a failed check, reported, not raised
        problem = f"{type(exc).__name__}: {str(exc)[:200]}"
    result: dict[str, Any] = {
        "ok": problem is None,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    if problem is not None:
        result["error"] = problem
    return result


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _redis() -> str | None:
    if not settings.REDIS_URL:
        return None  # the in-memory channel layer needs nothing
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return None


def _events() -> str | None:
    """The instances' event subscription (Redis pub/sub) is up, or not needed."""
    return None if instances.events_listening else "not subscribed to the instances' events"


def readiness() -> tuple[bool, dict[str, Any]]:
    """Return whether every dependency answered, and each one's result."""
    checks = {
        "database": _timed(_database),
        "redis": _timed(_redis),
        "events": _timed(_events),
        "upstream": _timed(upstream.upstream_problem),
    }
    if not settings.REDIS_URL:
        checks["redis"]["skipped"] = True
    return all(check["ok"] for check in checks.values()), checks
