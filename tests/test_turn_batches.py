"""Turns that arrive while a batch is being stored are stored together in the next one (a group commit),
and each still gets exactly its own result: its reply, or the refusal of it alone."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import IntegrityError, transaction

from conversations import exceptions
from conversations.chat import turns
from conversations.models import Conversation, Message
from conversations.owners import ConversationRef, Owner
from conversations.protocol import TurnOptions
from conversations.relay import instance as relay_instance
from conversations.relay import turnwriter

from .chat_sockets import ORIGIN, browser_owner_key, chunks_text, reply_collect, socket_open
from .servers import until

pytestmark = pytest.mark.django_db(transaction=True)

OWNER = Owner(session_key="batch-browser")


def request_for(session_id: str, content: str = "hello", **options: object) -> turns.TurnRequest:
    return turns.TurnRequest(
        ref=ConversationRef(OWNER.key, session_id),
        owner=OWNER,
        options=TurnOptions(**options),
        streamed_by="here",
        content=content,
    )


async def test_turns_sent_while_a_batch_commits_are_stored_together_each_with_its_own_reply(
    standin, replies_settle, settings, monkeypatch
):
    settings.CHAT_MAX_REPLIES_PER_OWNER = 0
    batches: list[int] = []
    in_flight = threading.Event()

    def turns_store_recorded(requests):  # the real store, its batch sizes noted
        batches.append(len(requests))
        in_flight.set()
        return turns.turns_store(requests)

    monkeypatch.setattr(turnwriter, "turns_store", turns_store_recorded)
    held = await socket_open("/ws/chat/batch-held/")
    await held.send_json_to({"message": "opens the conversation [[standin tokens=2]]"})
    assert (await reply_collect(held))[-1]["type"] == "done"
    others = [await socket_open(f"/ws/chat/batch-{i}/") for i in range(8)]

    # Another transaction holds the first conversation's row: the next batch waits on it, and every
    # turn sent meanwhile queues behind it.
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        with transaction.atomic():
            Conversation.objects.select_for_update().get(session_id="batch-held")
            locked.set()
            release.wait(10)

    holder = asyncio.get_running_loop().run_in_executor(None, hold_the_row)
    await asyncio.to_thread(locked.wait, 5)
    in_flight.clear()
    await held.send_json_to({"message": "waits for the lock [[standin tokens=2]]"})
    await asyncio.to_thread(in_flight.wait, 5)
    for i, socket in enumerate(others):
        await socket.send_json_to({"message": f"question {i} [[standin tokens=3 echo=1]]"})
    writer = (await relay_instance.instance_get()).turn_writer

    async def all_queued() -> bool:
        return len(writer._waiting) == len(others)

    await until(all_queued, wait=5)
    release.set()
    await holder

    assert (await reply_collect(held))[-1]["type"] == "done"
    for i, socket in enumerate(others):
        frames = await reply_collect(socket)
        start = next(frame for frame in frames if frame["type"] == "start")
        assert start["user_message"]["content"] == f"question {i} [[standin tokens=3 echo=1]]"
        assert frames[-1]["type"] == "done", frames[-1]
        assert f"question {i}" in chunks_text(frames)  # echoed (echo=1): the reply answers its own message
    assert batches == [1, 1, len(others)]
    for i in range(len(others)):
        stored = Message.objects.filter(
            conversation__session_id=f"batch-{i}", conversation__owner_key=browser_owner_key()
        )
        assert await stored.acount() == 2
    for socket in [held, *others]:
        await socket.disconnect()


def test_a_refused_turn_in_a_batch_refuses_it_alone_and_leaves_nothing():
    kept, refused, also_kept = turns.turns_store(
        [request_for("kept"), request_for("refused", model="nope/none"), request_for("also-kept")]
    )

    assert isinstance(kept, turns.Turn)
    assert isinstance(also_kept, turns.Turn)
    assert isinstance(refused, exceptions.UnknownModel)
    assert not Conversation.objects.filter(session_id="refused").exists()
    assert Message.objects.filter(conversation__session_id__in=["kept", "also-kept"]).count() == 4


def test_a_turn_whose_rows_the_database_refuses_fails_alone():
    """An owner whose account was deleted meanwhile: its conversation's row breaks a constraint at the
    commit, and the batch is stored again turn by turn."""
    gone = turns.TurnRequest(
        ref=ConversationRef("u:999999", "gone"), owner=Owner(user_id=999999), streamed_by="here", content="hi"
    )

    kept, failed = turns.turns_store([request_for("kept"), gone])

    assert isinstance(kept, turns.Turn)
    assert isinstance(failed, IntegrityError)
    assert Message.objects.filter(pk=kept.reply_id, status=Message.Status.STREAMING).exists()
    assert not Conversation.objects.filter(session_id="gone").exists()


def test_two_turns_of_one_conversation_in_a_batch_are_stored_one_after_the_other():
    first, resent, other = turns.turns_store(
        [
            request_for("twice", client_id="c1"),
            request_for("twice", client_id="c1"),
            request_for("twice", content="another", client_id="c2"),
        ]
    )

    assert isinstance(first, turns.Turn)
    assert resent == turns.DuplicateSend(client_id="c1", message_id=first.user_message["id"])
    assert isinstance(other, exceptions.Busy)  # the first's reply streams
    assert Message.objects.filter(conversation__session_id="twice").count() == 2


async def test_a_batch_is_one_thread_hop_for_turns_sent_together(standin, replies_settle):
    """Sanity of the writer itself: turns waiting when a batch ends go in the next, in order."""
    writer = turnwriter.TurnWriter()
    results = await asyncio.gather(
        *(writer.store(request_for(f"gathered-{i}", content=f"m{i}")) for i in range(5))
    )
    assert [turn.user_message["content"] for turn in results] == [f"m{i}" for i in range(5)]
    assert await sync_to_async(Message.objects.filter(status=Message.Status.STREAMING).count)() == 5


async def test_a_turn_is_stored_while_every_shared_worker_thread_is_busy(standin, replies_settle):
    """The turn writer has a thread of its own: a turn never queues behind the histories, session reads
    and reply ends that share the loop's executor (here all of its threads are held)."""
    # Cookie-less: no session read (on the shared executor) before the turn.
    socket = await socket_open("/ws/batch-busy-threads", headers=[ORIGIN])
    release = threading.Event()
    loop = asyncio.get_running_loop()
    held = [loop.run_in_executor(None, release.wait, 30) for _ in range(40)]
    try:
        await socket.send_json_to({"message": "while the workers are busy [[standin tokens=2]]"})
        start = await socket.receive_json_from(timeout=5)
        assert start["type"] == "start", start
    finally:
        release.set()
        await asyncio.gather(*held)
    assert (await reply_collect(socket))[-1]["type"] == "done"
    await socket.disconnect()
