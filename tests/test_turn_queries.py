"""A turn's write is the latency in front of every first token: its round trips to the database are
counted here, so one that creeps in is seen (BEGIN and COMMIT included)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations.chat import replies, turns
from conversations.chat.reply_end import ReplyEnd
from conversations.owners import ConversationRef, Owner
from conversations.protocol import TurnOptions

pytestmark = pytest.mark.django_db(transaction=True)

OWNER = Owner(session_key="queries-browser")
COMPLETE = ReplyEnd(status="complete")


def turn_request(session_id: str, content: str, client_id: str) -> turns.TurnRequest:
    return turns.TurnRequest(
        ref=ConversationRef(OWNER.key, session_id),
        owner=OWNER,
        options=TurnOptions(client_id=client_id),
        streamed_by="here",
        content=content,
    )


def turns_round_trips(requests: list[turns.TurnRequest]) -> tuple[list[turns.TurnResult], list[str]]:
    with CaptureQueriesContext(connection) as queries:
        results = turns.turns_store(requests)
    return results, [query["sql"] for query in queries.captured_queries]


def test_a_turn_is_one_transaction_of_few_round_trips():
    (first,), opening = turns_round_trips([turn_request("counted", "hello", "c1")])
    assert isinstance(first, turns.Turn)
    replies.reply_finish(reply_id=first.reply_id, streamed_by="here", content="hi", end=COMPLETE)
    (second,), later = turns_round_trips([turn_request("counted", "and again", "c2")])
    assert isinstance(second, turns.Turn)

    for sql in (opening, later):
        assert (sql[0], sql[-1]) == ("BEGIN", "COMMIT")
    # The lock (finding nothing), the conversation's insert and its lock, the (empty) tree, the enabled
    # models and agents (a new conversation takes the default agent, if there is one), the user message,
    # the reply row, the conversation's update.
    assert len(opening) == 11, opening
    # The lock, the whole tree with its texts, streaming reply and sent client ids in one read, the
    # enabled models, the two rows, the update.
    assert len(later) == 8, later


def test_turns_stored_together_cost_the_round_trips_of_one():
    """A batch of turns (a group commit) costs the statements of one turn, whatever its size."""
    opened, _ = turns_round_trips([turn_request(f"batch-{i}", "hello", "") for i in range(20)])
    for turn in opened:
        assert isinstance(turn, turns.Turn)
        replies.reply_finish(reply_id=turn.reply_id, streamed_by="here", content="hi", end=COMPLETE)
    requests = [turn_request(f"batch-{i}", f"again {i}", f"again-{i}") for i in range(20)]
    requests += [turn_request(f"batch-new-{i}", "first", "") for i in range(20)]

    results, sql = turns_round_trips(requests)

    assert len(sql) == 11, sql  # the locks, the new conversations' insert, and one of each statement
    assert [type(result) for result in results] == [turns.Turn] * 40
    assert [turn.user_message["content"] for turn in results[:3]] == ["again 0", "again 1", "again 2"]
    # Each turn answers its own conversation: the model sees that conversation's branch only.
    assert results[5].upstream_messages == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "again 5"},
    ]
    assert results[25].upstream_messages == [{"role": "user", "content": "first"}]
