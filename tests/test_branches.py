"""Conversation branches, through the real socket and the stand-in: every message follows a parent, and
the model sees the active branch only.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from conversations import selectors
from conversations.models import Conversation, Message
from conversations.owners import ConversationRef

from .conftest import reply_collect

pytestmark = pytest.mark.django_db(transaction=True)

threads_backfill = importlib.import_module(
    "conversations.migrations.0007_message_threads_and_branches"
).threads_backfill


async def turn(socket: WebsocketCommunicator, frame: dict[str, Any]) -> list[dict[str, Any]]:
    """Send a frame that starts a reply; return its frames up to the reply's end."""
    await socket.send_json_to(frame)
    frames = await reply_collect(socket)
    assert frames[0]["type"] == "start", frames
    return frames


async def say(socket: WebsocketCommunicator, text: str) -> list[dict[str, Any]]:
    return await turn(socket, {"message": text})


async def conversation_of(session_id: str) -> Conversation:
    return await Conversation.objects.aget(owner_key="public", session_id=session_id)


async def rows(**filters: Any) -> list[tuple[int, str, int | None]]:
    """(id, role, parent id) of the stored messages, oldest id first."""
    query = Message.objects.filter(**filters).order_by("id").values_list("id", "role", "parent_id")
    return [row async for row in query]


async def test_each_turn_follows_the_active_leaf(chat_socket, standin):
    first = await say(chat_socket, "one")
    second = await say(chat_socket, "two")
    one, two = first[0]["user_message"], second[0]["user_message"]
    assert (one["parent_id"], first[0]["parent_id"]) == (None, one["id"])
    assert (two["parent_id"], second[0]["parent_id"]) == (first[0]["message_id"], two["id"])
    assert two["siblings"] == [two["id"]]
    assert await rows() == [
        (one["id"], "user", None),
        (first[0]["message_id"], "assistant", one["id"]),
        (two["id"], "user", first[0]["message_id"]),
        (second[0]["message_id"], "assistant", two["id"]),
    ]
    assert (await conversation_of("t1")).current_message_id == second[0]["message_id"]


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
        parents = dict(await sync_to_async(selectors.thread_pairs)(conversation_id=conversation.pk))
        assert [parents[pk] for pk in ids] == [None, *ids[:-1]]
        await conversation.arefresh_from_db()
        assert conversation.current_message_id == ids[-1]
    await empty.arefresh_from_db()
    assert empty.current_message_id is None
    history = await sync_to_async(selectors.conversation_history)(ref=ConversationRef("public", "old-2"))
    assert [m["id"] for m in history["messages"]] == shuffled_ids
