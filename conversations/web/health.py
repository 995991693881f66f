"""Health and metrics: liveness (`/healthz`), readiness (`/readyz`: can this instance serve a chat right
now? each check reports its own latency) and the Prometheus metrics (`/metrics`).

The readiness answer is public (anyone who reaches the port may ask), so it names the check that failed and no
more; what went wrong goes to the log. It is kept for CHAT_READY_CACHE_SECONDS, so a flood of requests
costs one round of checks (one upstream call) per interval.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import prometheus_client
import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from .. import upstream
from ..relay.instance import events_listening

logger = logging.getLogger(__name__)

# The latest result and when it was taken (time.monotonic()); the lock lets one thread check at a time.
_latest: tuple[float, bool, dict[str, Any]] | None = None
_checking = threading.Lock()


def _timed(name: str, check: Callable[[], str | None]) -> dict[str, Any]:
    """Run one check; return {"ok", "latency_ms"}, and log what went wrong if it failed."""
    started = time.perf_counter()
    try:
        problem = check()
    except Exception as exc:  # any failure of a dependency is a failed check, logged, not raised
        problem = f"{type(exc).__name__}: {str(exc)[:500]}"
    if problem is not None:
        # The detail (hosts, users, URLs) is for the operator only, never in the public answer.
        logger.warning("readiness check %s failed: %s", name, problem, extra={"check": name})
    return {"ok": problem is None, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _redis() -> str | None:
    if not settings.REDIS_URL:
        return None  # one process, with no Redis to need
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return None


def _events() -> str | None:
    """The instances' event subscription (Redis pub/sub) is up, or not needed."""
    return None if events_listening() else "not subscribed to the instances' events"


def _checked() -> tuple[bool, dict[str, Any]]:
    checks = {
        "database": _timed("database", _database),
        "redis": _timed("redis", _redis),
        "events": _timed("events", _events),
        "upstream": _timed("upstream", upstream.upstream_problem),
    }
    if not settings.REDIS_URL:
        checks["redis"]["skipped"] = True
    return all(check["ok"] for check in checks.values()), checks


def _fresh() -> tuple[bool, dict[str, Any]] | None:
    if _latest is None or time.monotonic() - _latest[0] >= settings.CHAT_READY_CACHE_SECONDS:
        return None
    return _latest[1], _latest[2]


def readiness() -> tuple[bool, dict[str, Any]]:
    """Return whether every dependency answered, and each one's result ({"ok", "latency_ms"}).

    A result younger than CHAT_READY_CACHE_SECONDS is returned as it was; requests that arrive while a
    check runs wait for it rather than start their own.
    """
    global _latest
    found = _fresh()
    if found is not None:
        return found
    with _checking:
        found = _fresh()
        if found is None:
            ready, checks = _checked()
            _latest = (time.monotonic(), ready, checks)
            found = ready, checks
    return found


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers HTTP."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: Postgres, Redis and the upstream each answered (with their latency); else 503."""
    ready, checks = readiness()
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics of this instance; behind a bearer token when CHAT_METRICS_TOKEN is set."""
    token = settings.CHAT_METRICS_TOKEN
    if token and not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse("metrics need the bearer token\n", status=401, content_type="text/plain")
    return HttpResponse(
        prometheus_client.generate_latest(), content_type=prometheus_client.CONTENT_TYPE_LATEST
    )
