"""A turn's session check reads the session store on a worker thread of its own: a thousand tabs sending
at once are not queued one by one behind a single thread (every turn of a signed-in or anonymous browser
makes this check)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from conversations import owners
from conversations.owners import Owner


async def test_session_checks_run_side_by_side(monkeypatch):
    both_inside = threading.Barrier(2, timeout=5)

    def session_holds(owner: Owner) -> bool:
        both_inside.wait()  # breaks (and raises) if the second check cannot start while the first runs
        return True

    monkeypatch.setattr(owners, "_session_holds", session_holds)
    browsers = [Owner(session_key="first-browser"), Owner(session_key="second-browser")]
    assert await asyncio.gather(*(owners.owner_still_valid(owner) for owner in browsers)) == [True, True]


@pytest.mark.django_db(transaction=True)
async def test_a_session_that_is_gone_fails_the_check():
    assert not await owners.owner_still_valid(Owner(session_key="never-stored"))
