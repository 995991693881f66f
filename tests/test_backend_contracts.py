"""The relay's backends keep their contract: each base is an ABC, so a backend that lacks one of its
methods fails when it is constructed (at an instance's start), not at the first call that needs it."""

from __future__ import annotations

import inspect
from abc import ABC

import pytest

from conversations.relay.backends.eventbus import EventBus, LocalEventBus, RedisEventBus
from conversations.relay.backends.limits import LocalSocketCounter, RedisSocketCounter, SocketCounter
from conversations.relay.backends.replylog import LocalReplyLog, RedisReplyLog, ReplyLog

BASES = {
    EventBus: (LocalEventBus, RedisEventBus),
    ReplyLog: (LocalReplyLog, RedisReplyLog),
    SocketCounter: (LocalSocketCounter, RedisSocketCounter),
}
CASES = [(base, name) for base in BASES for name in sorted(base.__abstractmethods__)]


def test_every_base_is_abstract_and_every_backend_complete():
    for base, backends in BASES.items():
        assert issubclass(base, ABC)
        with pytest.raises(TypeError):
            base()  # type: ignore[abstract]
        for backend in backends:
            assert issubclass(backend, base)
            assert not inspect.isabstract(backend), backend.__abstractmethods__


@pytest.mark.parametrize(("base", "missing"), CASES, ids=[f"{base.__name__}.{name}" for base, name in CASES])
def test_a_backend_missing_a_method_cannot_be_constructed(base, missing):
    complete = BASES[base][0]  # the local backend: constructed without Redis
    members = {name: getattr(complete, name) for name in base.__abstractmethods__ if name != missing}
    lacking = type(f"Lacking{missing.title()}", (base,), members)
    with pytest.raises(TypeError, match=missing):
        lacking()
    complete()  # with every method it is constructed
