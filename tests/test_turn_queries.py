"""A turn's write is the latency in front of every first token: its round trips to the database are
counted here, so one that creeps in is seen (BEGIN and COMMIT included)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import replies, turns
from conversations.owners import ConversationRef, Owner

pytestmark = pytest.mark.django_db(transaction=True)

OWNER = Owner(session_key="queries-browser")


def turn_round_trips(session_id: str, content: str, client_id: str) -> tuple[turns.Turn, list[str]]:
    request = turns.TurnRequest(
        ref=ConversationRef(OWNER.key, session_id), owner=OWNER, client_id=client_id, streamed_by="here"
    )
    with CaptureQueriesContext(connection) as queries:
        turn = turns.turn_begin(request, content=content)
    assert isinstance(turn, turns.Turn)
    return turn, [query["sql"] for query in queries.captured_queries]


def test_a_turn_is_one_transaction_of_few_round_trips():
    first, opening = turn_round_trips("counted", "hello", "c1")
    replies.reply_finish(reply_id=first.reply_id, streamed_by="here", content="hi", status="complete")
    _, later = turn_round_trips("counted", "and again", "c2")

    for sql in (opening, later):
        assert (sql[0], sql[-1]) == ("BEGIN", "COMMIT")
    # Creating the conversation (select, savepoint, insert, release), the enabled models, the user
    # message, the reply row, the conversation's update: nothing to read of a thread that is new.
    assert len(opening) == 10, opening
    # The lock, the enabled models, the whole tree with its streaming reply and sent client ids in one
    # read, the path's messages, the two rows, the update.
    assert len(later) == 9, later
