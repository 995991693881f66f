"""Service calls from the event loop: each on a worker thread, retried where that is safe."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError

logger = logging.getLogger(__name__)

T = TypeVar("T")


def db_call(
    func: Callable[..., T], *, retry: bool = True, executor: ThreadPoolExecutor | None = None
) -> Callable[..., Awaitable[T]]:
    """Run a service call on a worker thread (the loop's default executor's, or `executor`'s); with
    `retry`, once more on a fresh connection if the old one was dead.

    Service calls are self-contained, so they may run on any thread, each with its own connection: a
    hundred turns starting at once do not queue behind one. A connection the database dropped fails
    once and is discarded by Django. Only idempotent calls may be retried: a turn's write whose COMMIT
    was lost may have committed, so it takes `retry=False` and its failure reaches the client.
    """
    run = database_sync_to_async(func, thread_sensitive=False, executor=executor)
    if not retry:
        return run

    async def call(**kwargs: Any) -> T:
        try:
            return await run(**kwargs)
        except (OperationalError, InterfaceError):
            logger.warning("database call failed; retrying on a new connection", exc_info=True)
            return await run(**kwargs)

    return call


async def db_call_patient(func: Callable[..., T], *, budget: float, **kwargs: Any) -> T:
    """Run an idempotent service call, retrying with backoff while the database is away, for up to
    `budget` seconds; then raise its error."""
    loop = asyncio.get_running_loop()
    deadline, delay = loop.time() + budget, 0.1
    while True:
        try:
            return await db_call(func)(**kwargs)
        except (OperationalError, InterfaceError):
            if loop.time() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
