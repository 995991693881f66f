"""A dead worker's jobs, run again by another.

Every worker writes a heartbeat to Postgres every third of CHAT_WORKER_STALLED_SECONDS. A worker killed
(SIGKILL, the out-of-memory killer, its host gone) leaves its running jobs `doing` forever: Procrastinate
finds them (`get_stalled_jobs`: jobs `doing` under a worker whose heartbeat is older than that) but
leaves what to do to the application. This periodic job, run once per period across the workers, puts
them back in the queue; so a killed worker's job runs again within about CHAT_WORKER_STALLED_SECONDS and
a third of it. A job retried this way counts an attempt, as a failure would.
"""

from __future__ import annotations

import logging

from django.conf import settings
from procrastinate import JobContext
from procrastinate.contrib.django import app
from procrastinate.exceptions import ConnectorException

from .policy import UPKEEP_QUEUE

logger = logging.getLogger(__name__)


def every(seconds: float) -> str:
    """A cron expression for `seconds` (whole seconds under a minute, else whole minutes)."""
    if seconds < 60:
        return f"* * * * * */{max(1, int(seconds))}"
    return f"*/{min(59, int(seconds // 60))} * * * *"


@app.periodic(cron=every(settings.CHAT_WORKER_STALLED_SECONDS / 3))
@app.task(name="chat.stalled_jobs_retry", queue=UPKEEP_QUEUE, pass_context=True)
async def stalled_jobs_retry(context: JobContext, timestamp: int) -> None:
    manager = context.app.job_manager
    stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=settings.CHAT_WORKER_STALLED_SECONDS)
    for job in stalled:
        try:
            await manager.retry_job(job)
        except ConnectorException:
            continue  # it ended meanwhile (its worker was only slow to beat)
        logger.warning(
            "job of a dead worker queued again",
            extra={"job_id": job.id, "task": job.task_name, "dead_worker": job.worker_id},
        )
