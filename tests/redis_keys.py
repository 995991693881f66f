"""What the tests clear in the shared Redis between tests: counters that would carry over."""

from __future__ import annotations

import redis
from django.conf import settings


def limits_forget(*, sockets: bool = False) -> None:
    """Forget every rate-limit count (the `limits` library's keys), and with `sockets` the open-socket
    counts too: each test counts from zero."""
    patterns = [f"{settings.CHAT_REDIS_PREFIX}-limits*"]
    if sockets:
        patterns.append(f"{settings.CHAT_REDIS_PREFIX}:sockets:*")
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for pattern in patterns:
            for key in client.scan_iter(pattern):
                client.delete(key)
    finally:
        client.close()
