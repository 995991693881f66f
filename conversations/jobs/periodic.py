"""The upkeep that cron ran, as periodic jobs: retention, attachments' clean-up, the model catalog.

Each is scheduled by its setting (a cron expression in UTC; empty turns it off) and runs once per period
whatever the number of workers: every worker's deferrer proposes the period's job, and Procrastinate's
periodic-defer lock (one row per task and period) lets one in. The commands (`chat_retention`,
`attachments_cleanup`, `models_sync`) stay for cron and for a hand.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from procrastinate.contrib.django import app
from procrastinate.tasks import Task

from ..agents.catalog import CatalogUnavailable, catalog_fetch, catalog_sync
from ..attachments.store import attachments_cleanup
from ..chat.upkeep import conversations_purge
from .policy import UPKEEP_QUEUE, retry_with_backoff

logger = logging.getLogger(__name__)


def _scheduled(task: Task[Any, Any, Any], schedule: str) -> None:
    """Put the task on its schedule, unless the schedule is empty (turned off)."""
    if schedule:
        app.periodic(cron=schedule)(task)


@app.task(name="chat.retention_purge", queue=UPKEEP_QUEUE, retry=retry_with_backoff())
def retention_purge(timestamp: int) -> None:
    """`chat_retention`: delete conversations idle CHAT_RETENTION_DAYS (nothing while it is 0)."""
    days = settings.CHAT_RETENTION_DAYS
    if days < 1:
        logger.info("retention off (CHAT_RETENTION_DAYS=0): nothing deleted")
        return
    count = conversations_purge(older_than_days=days)
    logger.info("retention deleted %d conversation(s) idle %d day(s)", count, days, extra={"deleted": count})


@app.task(name="chat.attachments_cleanup", queue=UPKEEP_QUEUE, retry=retry_with_backoff())
def attachments_sweep(timestamp: int) -> None:
    """`attachments_cleanup`: uploads never sent, rows without files, files without rows."""
    report = attachments_cleanup(unsent_hours=settings.CHAT_ATTACHMENT_UNSENT_HOURS)
    logger.info("attachments cleaned up", extra=report)


@app.task(
    name="chat.models_sync",
    queue=UPKEEP_QUEUE,
    retry=retry_with_backoff(retry_exceptions=(CatalogUnavailable,)),
)
def models_sync(timestamp: int) -> None:
    """`models_sync`: the API's model list onto the chat models (tried again while the API is away)."""
    result = catalog_sync(catalog_fetch())
    logger.info(
        "model catalog synced",
        extra={"updated": len(result.updated), "added": result.added, "unlisted": result.unlisted},
    )


_scheduled(retention_purge, settings.CHAT_RETENTION_SCHEDULE)
_scheduled(attachments_sweep, settings.CHAT_ATTACHMENTS_CLEANUP_SCHEDULE)
_scheduled(models_sync, settings.CHAT_MODELS_SYNC_SCHEDULE)
