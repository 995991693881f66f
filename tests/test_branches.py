"""Conversation branches: every message follows a parent, and a conversation points at its active leaf."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

threads_backfill = importlib.import_module(
    "conversations.migrations.0007_message_threads_and_branches"
).threads_backfill


@sync_to_async
def unthreaded(session_id: str, *created_minutes: int) -> tuple[Conversation, list[int]]:
    """Rows as they were before threads: no parents, no current message. Return them in thread order."""
    conversation = Conversation.objects.create(owner_key="public", session_id=session_id)
    now = timezone.now()
    messages = [
        Message.objects.create(
            conversation=conversation,
            role="user" if index % 2 == 0 else "assistant",
            content=str(index),
            created_at=now + timedelta(minutes=minute),
        )
        for index, minute in enumerate(created_minutes)
    ]
    ordered = sorted(messages, key=lambda message: (message.created_at, message.pk))
    return conversation, [message.pk for message in ordered]


async def test_the_migration_chains_existing_messages_in_time_order():
    linear, linear_ids = await unthreaded("old-1", 0, 1, 2, 3, 4)
    # Created out of id order (an imported row), and two with the same timestamp (id breaks the tie).
    shuffled, shuffled_ids = await unthreaded("old-2", 5, 1, 3, 3, 0)
    empty = await Conversation.objects.acreate(owner_key="public", session_id="old-3")

    chained = await sync_to_async(threads_backfill)(Conversation, Message, batch_size=2)

    assert chained == 2
    for conversation, ids in ((linear, linear_ids), (shuffled, shuffled_ids)):
        parents = {pk: parent async for pk, parent in conversation.messages.values_list("id", "parent_id")}
        assert [parents[pk] for pk in ids] == [None, *ids[:-1]]
        await conversation.arefresh_from_db()
        assert conversation.current_message_id == ids[-1]
    await empty.arefresh_from_db()
    assert empty.current_message_id is None
