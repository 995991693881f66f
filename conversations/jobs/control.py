"""A job stopped from outside: cancelled while it waits, aborted while it runs."""

from __future__ import annotations

from procrastinate.contrib.django import app


def job_cancel(job_id: int) -> bool:
    """Cancel a job waiting in the queue, or ask the worker running it to abort it (an async job is
    cancelled within seconds; a sync one stops where it checks `context.should_abort()`). False when
    the job had already ended."""
    return app.job_manager.cancel_job_by_id(job_id, abort=True)
