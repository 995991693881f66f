"""The test database emptied between transactional tests by DELETE rather than Django's TRUNCATE.

On Postgres a TRUNCATE of every table gives each one new files and costs about half a second, after each
of hundreds of tests; deleting the few rows a test left costs milliseconds. Django's foreign keys are
deferred to the flush's commit, so the order of the deletes does not matter. A flush that resets
sequences or cascades keeps Django's TRUNCATE, which alone does either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from django.db.backends.postgresql.operations import DatabaseOperations


def sql_flush_by_delete(original: Callable[..., list[str]]) -> Callable[..., list[str]]:
    def sql_flush(
        ops: DatabaseOperations,
        style: Any,
        tables: Sequence[str],
        *,
        reset_sequences: bool = False,
        allow_cascade: bool = False,
    ) -> list[str]:
        if reset_sequences or allow_cascade:
            return original(ops, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return [f"DELETE FROM {ops.quote_name(table)};" for table in tables]

    return sql_flush


@contextmanager
def flushes_by_delete() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush_by_delete(DatabaseOperations.sql_flush))
        yield
