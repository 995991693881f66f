"""One worker process: the project's queues, its beat, its drain.

Procrastinate's worker takes SIGTERM and SIGINT itself: it takes no new job, lets its running ones end
within CHAT_WORKER_DRAIN_SECONDS, aborts the rest (they go back to the queue, as a failure's retry) and
unregisters. It reads Postgres through a pool of its own (psycopg's, from the same connection
parameters as Django's), listening for new jobs (LISTEN/NOTIFY) rather than polling.
"""

from __future__ import annotations

import logging
import os
import socket

from django.conf import settings
from procrastinate.contrib.django import app

from .policy import QUEUES

logger = logging.getLogger(__name__)


def worker_run(*, concurrency: int) -> None:
    """Run a worker until it is told to stop (SIGTERM, SIGINT)."""
    name = f"{socket.gethostname()}-{os.getpid()}"
    logger.info("worker starting", extra={"worker": name, "queues": QUEUES, "concurrency": concurrency})
    with app.replace_connector(app.connector.get_worker_connector()):
        app.run_worker(
            queues=list(QUEUES),
            name=name,
            concurrency=concurrency,
            shutdown_graceful_timeout=settings.CHAT_WORKER_DRAIN_SECONDS,
            update_heartbeat_interval=settings.CHAT_WORKER_STALLED_SECONDS / 3,
            stalled_worker_timeout=settings.CHAT_WORKER_STALLED_SECONDS,
        )
    logger.info("worker stopped", extra={"worker": name})
