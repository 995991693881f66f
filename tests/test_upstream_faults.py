"""Upstream faults, through the real socket and the stand-in: what the user sees, what is stored, what
is retried (only before the first token, only connect errors, 429 and 5xx), and that the next message works.
"""

from __future__ import annotations

import pytest

from conversations.models import Message

from .chat_sockets import chunks_text, reply_collect

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_retries(settings):
    settings.CHAT_UPSTREAM_MAX_RETRIES = 2
    settings.CHAT_UPSTREAM_RETRY_BACKOFF = 0.01
    settings.CHAT_UPSTREAM_IDLE_TIMEOUT = 0.5
    settings.CHAT_UPSTREAM_FIRST_TOKEN_TIMEOUT = 0.8


STALLED = {"stalled", "client_disconnected"}  # the stand-in logs a stall the client gave up on either way

# fault script for the stand-in → (last frame type, error code, stored status, outcome of each request)
FAULTS = {
    "429 then 200 is retried": (
        [{"status": 429}],
        ("done", None, "complete", ["error_status", "completed"]),
    ),
    "500 is retried, then fails": (
        [{"status": 500}, {"status": 500}, {"status": 500}],
        ("error", "upstream_error", "error", ["error_status"] * 3),
    ),
    "429 after the retries has its own code": (
        [{"status": 429}] * 3,
        ("error", "upstream_rate_limited", "error", ["error_status"] * 3),
    ),
    "400 is not retried": (
        [{"status": 400}],
        ("error", "upstream_error", "error", ["error_status"]),
    ),
    "402 (the account's balance or quota) has its own code and is not retried": (
        [{"status": 402}],
        ("error", "upstream_payment_required", "error", ["error_status"]),
    ),
    "a drop before the first token is retried": (
        [{"drop_after": 0}],
        ("done", None, "complete", ["dropped", "completed"]),
    ),
    "a drop mid-reply keeps the partial text and is not retried": (
        [{"tokens": 20, "drop_after": 5}],
        ("error", "upstream_error", "error", ["dropped"]),
    ),
    "a stall mid-reply times out and keeps the partial text": (
        [{"tokens": 20, "stall_after": 3}],
        ("error", "upstream_timeout", "error", [STALLED]),
    ),
    "a stall before the first token times out": (
        [{"stall_before_headers": 5}],
        ("error", "upstream_timeout", "error", [STALLED]),
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
async def test_upstream_fault(chat_socket, standin, fault):
    script, (last_type, code, status, outcomes) = FAULTS[fault]
    standin.script(*script)
    await chat_socket.send_json_to({"message": "fault"})
    frames = await reply_collect(chat_socket)
    last = frames[-1]
    assert last["type"] == last_type
    if code:
        assert last["code"] == code
        assert last["message_id"] == frames[0]["message_id"]
    reply = await Message.objects.aget(pk=frames[0]["message_id"])
    assert reply.status == status
    assert reply.content == chunks_text(frames)  # whatever the user saw is what is stored
    assert await Message.objects.filter(role="user", content="fault").aexists()

    seen = [r["outcome"] for r in standin.requests()]
    assert len(seen) == len(outcomes)
    for outcome, expected in zip(seen, outcomes, strict=True):
        assert outcome in expected if isinstance(expected, set) else outcome == expected

    # The conversation is free again: the next message streams to the end.
    await chat_socket.send_json_to({"message": "next [[standin status=]]"})
    after = await reply_collect(chat_socket)
    assert after[-1]["type"] == "done"
