"""The turns this instance stores, gathered into batches: a group commit.

A turn asked for while none is being stored is stored at once, alone. Turns asked for while a batch is
being stored wait for it, then are stored together in the next one (`turns.turns_store`): under a burst
of messages the database work per turn falls several-fold (one lock statement, one tree read, one insert
of messages and one of replies per batch), and nothing ever waits on a timer.

The batches run on a thread of their own: on the loop's shared executor they queued behind every other
database call (the histories of sockets opening, the ends of replies), and a turn is what a user waits
on before the first token.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from ..chat.turns import DuplicateSend, Turn, TurnRequest, TurnResult, turns_store
from ..exceptions import Unavailable
from .dbcall import db_call

logger = logging.getLogger(__name__)

# The most turns in one transaction: its row locks and its statements stay small.
BATCH_MAX = 100


class TurnWriter:
    """Stores turns for one instance, one batch at a time."""

    def __init__(self) -> None:
        self._waiting: list[tuple[TurnRequest, asyncio.Future[TurnResult]]] = []
        self._task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turn-writer")
        self._store = db_call(turns_store, retry=False, executor=self._thread)

    async def store(self, request: TurnRequest) -> Turn | DuplicateSend:
        """Store one turn (with whatever others are waiting) and return its result; raise what refused
        it (a ChatError), or the database's failure (a turn's write is never retried: its COMMIT may
        have landed)."""
        future: asyncio.Future[TurnResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="turn-writer")
        result = await future
        if isinstance(result, Exception):
            raise result
        return result

    def close(self) -> None:
        """Let the writer's thread go once it is idle (its instance closes)."""
        self._thread.shutdown(wait=False)

    async def _run(self) -> None:
        batch: list[tuple[TurnRequest, asyncio.Future[TurnResult]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:BATCH_MAX], self._waiting[BATCH_MAX:]
                try:
                    results = await self._store([request for request, _ in batch])
                except Exception as exc:  # the database failed: every turn of the batch is told
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():  # its turn_start was cancelled: the reply row lapses unrenewed
                        future.set_result(result)
        finally:
            self._task = None
            # Cancelled with turns waiting (its instance closes): each is told, none waits forever.
            for _, future in [*batch, *self._waiting]:
                if not future.done():
                    future.set_result(Unavailable("This server is restarting; send again in a moment."))
            self._waiting = []
