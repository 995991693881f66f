"""The suite's own jobs: one that always fails, two that wait, one that tells a page. The workers the
tests start import them too (the settings add this module to the job import paths under the suite)."""

from __future__ import annotations

import asyncio

from procrastinate.contrib.django import app

from conversations import protocol
from conversations.jobs.policy import retry_with_backoff
from conversations.owners import ConversationRef
from conversations.relay.outside import frame_send_sync

# Three runs, 2 s then 4 s apart.
FAILING_RETRY = retry_with_backoff(attempts=3, base_seconds=2)


@app.task(name="tests.always_fails", retry=FAILING_RETRY)
def always_fails() -> None:
    raise RuntimeError("this job always fails")


@app.task(name="tests.sleeps")
async def sleeps(seconds: float) -> None:
    await asyncio.sleep(seconds)


@app.task(name="tests.sleeps_retried", retry=retry_with_backoff(attempts=2, base_seconds=60))
async def sleeps_retried(seconds: float) -> None:
    await asyncio.sleep(seconds)


@app.task(name="tests.title_tell")
def title_tell(owner_key: str, session_id: str, title: str) -> None:
    """A sync job (as one on the ORM would be) telling a conversation's tabs of a new title."""
    if not frame_send_sync(ConversationRef(owner_key, session_id), protocol.title_frame(title=title)):
        raise RuntimeError("the frame was not sent")
