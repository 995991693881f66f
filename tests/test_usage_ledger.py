"""The usage ledger: every reply's end appends one entry, from which usage, cost and the daily quota are
read; deleting a chat (by hand or by retention) takes none of it back, and a continued share's copied
replies add none."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.test import AsyncClient
from django.utils import timezone

from conversations import usage_ledger
from conversations.chat import replies
from conversations.chat.reply_end import ReplyEnd
from conversations.chat.upkeep import conversations_purge
from conversations.costs import Prices, reply_cost
from conversations.models import ChatModel, Conversation, DailyUsage, Message, UsageEntry
from conversations.owners import ConversationRef

from .chat_sockets import BROWSER_SESSION_KEY, browser_owner_key, reply_collect, socket_open
from .rows import reply_row

pytestmark = pytest.mark.django_db(transaction=True)


def browser_client() -> AsyncClient:
    """An HTTP client of the suite's anonymous browser (the owner its sockets speak for)."""
    client = AsyncClient()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = BROWSER_SESSION_KEY
    return client


async def usage_totals() -> dict[str, object]:
    return await sync_to_async(DailyUsage.objects.all().totals)()


async def test_a_replys_end_appends_one_ledger_entry_with_its_usage(chat_socket):
    await chat_socket.send_json_to({"message": "count me [[standin tokens=7]]"})
    done = (await reply_collect(chat_socket))[-1]
    reply = await Message.objects.select_related("conversation").aget(pk=done["message_id"])
    entries = [entry async for entry in UsageEntry.objects.all()]
    assert [(e.kind, e.message_id) for e in entries] == [("reply", reply.pk)]
    (entry,) = entries
    assert (entry.owner_key, entry.user_id, entry.conversation_id) == (
        browser_owner_key(),
        None,
        reply.conversation_id,
    )
    assert (entry.model, entry.agent_slug) == (reply.model, reply.agent_slug)
    assert entry.total_tokens == done["usage"]["total_tokens"] == reply.total_tokens
    assert (entry.prompt_tokens, entry.completion_tokens) == (reply.prompt_tokens, reply.completion_tokens)
    assert entry.cost == reply.cost


async def test_deleting_the_chat_that_used_the_daily_quota_does_not_free_it(chat_socket, settings):
    settings.CHAT_DAILY_TOKEN_QUOTA = 100
    await chat_socket.send_json_to({"message": "spend [[standin tokens=105]]"})
    done = (await reply_collect(chat_socket))[-1]
    assert done["usage"]["total_tokens"] >= 105
    assert (await browser_client().post("/c/t1/delete")).status_code == 200
    assert not await Conversation.objects.filter(session_id="t1").aexists()

    fresh = await socket_open("/ws/chat/t2/")
    await fresh.send_json_to({"message": "a fresh chat"})
    frame = await fresh.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "quota_exceeded")
    assert not await Message.objects.filter(content="a fresh chat").aexists()
    await fresh.disconnect()


async def test_the_retention_purge_leaves_the_admins_usage_unchanged(chat_socket):
    await chat_socket.send_json_to({"message": "old news [[standin tokens=9]]"})
    await reply_collect(chat_socket)
    before = await usage_totals()
    assert before["replies"] == 1
    assert before["total_tokens"] > 0
    await Conversation.objects.filter(session_id="t1").aupdate(updated_at=timezone.now() - timedelta(days=40))
    assert await sync_to_async(conversations_purge)(older_than_days=30) == 1
    assert not await Message.objects.aexists()
    assert await usage_totals() == before


async def test_a_continued_share_adds_no_usage(chat_socket):
    await chat_socket.send_json_to({"message": "share me [[standin tokens=5]]"})
    await reply_collect(chat_socket)
    shared = await browser_client().post("/c/t1/share", json.dumps({}), content_type="application/json")
    url = shared.json()["url"].removeprefix("http://testserver")
    before = await usage_totals()
    for _ in range(3):
        assert (await AsyncClient().post(f"{url}continue")).status_code == 302
    assert await Conversation.objects.acount() == 4
    assert await usage_totals() == before
    assert await UsageEntry.objects.acount() == 1


def test_a_reply_stored_as_lost_by_another_instance_still_gets_its_entry():
    conversation = Conversation.objects.create(session_id="lost", owner_key="s:lost")
    reply = reply_row(conversation, status="streaming", streamed_by="dead-instance", content="half a")
    assert replies.reply_lost_store(reply_id=reply.pk, shown_text="half a reply", streamed_by="dead-instance")
    assert list(UsageEntry.objects.values_list("kind", "message_id", "owner_key")) == [
        ("reply", reply.pk, "s:lost")
    ]


def test_a_replys_end_is_one_statement_and_a_second_end_writes_nothing(django_assert_num_queries):
    conversation = Conversation.objects.create(session_id="once", owner_key="s:once")
    reply = Message.objects.create(
        conversation=conversation, role="assistant", status="streaming", streamed_by="me"
    )
    usage = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    with django_assert_num_queries(1):
        assert replies.reply_finish(
            reply_id=reply.pk, streamed_by="me", content="x", end=ReplyEnd(status="complete", usage=usage)
        )
    assert not replies.reply_finish(
        reply_id=reply.pk, streamed_by="me", content="y", end=ReplyEnd(status="complete", usage=usage)
    )
    assert list(UsageEntry.objects.values_list("message_id", "total_tokens")) == [(reply.pk, 5)]


def test_a_title_is_billed_at_its_models_prices_with_its_store_in_two_statements(django_assert_num_queries):
    ChatModel.objects.create(
        name="openai/gpt-5-mini",
        label="mini",
        enabled=False,
        price_input=Decimal("0.25"),
        price_output=Decimal("2"),
        price_cached=Decimal("0.025"),
    )
    mine = Conversation.objects.create(session_id="titled", owner_key="s:titles", title="first line")
    renamed = Conversation.objects.create(
        session_id="renamed", owner_key="s:titles", title="Mine", title_source=Conversation.TitleSource.USER
    )
    usage = {"prompt_tokens": 1001, "completion_tokens": 7, "total_tokens": 1008}

    def billed(session_id: str, title: str) -> usage_ledger.TitleStore:
        ref = ConversationRef(owner_key="s:titles", session_id=session_id)
        return usage_ledger.title_billed(ref=ref, model="openai/gpt-5-mini", usage=usage, title=title)

    kept_out = usage_ledger.TitleStore.KEPT_OUT
    with django_assert_num_queries(2):
        assert billed("titled", "A model's title") is usage_ledger.TitleStore.STORED
    assert billed("renamed", "Not stored") is kept_out  # the user's title stays; billed all the same
    assert billed("titled", "") is kept_out
    assert billed("gone", "No conversation") is kept_out
    mine.refresh_from_db()
    renamed.refresh_from_db()
    assert (mine.title, mine.title_source) == ("A model's title", Conversation.TitleSource.MODEL)
    assert (renamed.title, renamed.title_source) == ("Mine", Conversation.TitleSource.USER)
    cost = reply_cost(usage, Prices(Decimal("0.25"), Decimal("2"), Decimal("0.025")))
    entries = UsageEntry.objects.order_by("pk").values_list(
        "kind", "owner_key", "user_id", "conversation_id", "model", "total_tokens", "cost"
    )
    assert list(entries) == [
        ("title", "s:titles", None, mine.pk, "openai/gpt-5-mini", 1008, cost),
        ("title", "s:titles", None, renamed.pk, "openai/gpt-5-mini", 1008, cost),
        ("title", "s:titles", None, mine.pk, "openai/gpt-5-mini", 1008, cost),
        ("title", "s:titles", None, None, "openai/gpt-5-mini", 1008, cost),
    ]


def test_a_title_never_waits_for_the_row_a_turn_holds_and_is_stored_once_the_turn_committed():
    """A conversation's second turn is stored as its title is: a title queued on the row a turn batch
    holds would hold up the next batch, every turn of it. It is billed at once and stored after."""
    conversation = Conversation.objects.create(session_id="busy", owner_key="s:titles", title="first line")
    ref = ConversationRef(owner_key="s:titles", session_id="busy")
    locked, release = threading.Event(), threading.Event()

    def turn_holding_the_row() -> None:
        try:
            with transaction.atomic():
                Conversation.objects.select_for_update().get(pk=conversation.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    turn = threading.Thread(target=turn_holding_the_row)
    turn.start()
    try:
        assert locked.wait(5)
        started = time.monotonic()
        stored = usage_ledger.title_billed(ref=ref, model="openai/gpt-5-mini", usage=None, title="Busy title")
        retried = usage_ledger.title_store_retry(ref=ref, title="Busy title", row_wait=False)
        assert time.monotonic() - started < 2  # the turn holds its row for 10 s
        assert (stored, retried) == (usage_ledger.TitleStore.ROW_BUSY, usage_ledger.TitleStore.ROW_BUSY)
        assert UsageEntry.objects.filter(kind="title", conversation_id=conversation.pk).count() == 1
    finally:
        release.set()
        turn.join()
    assert usage_ledger.title_store_retry(ref=ref, title="Busy title", row_wait=False) is (
        usage_ledger.TitleStore.STORED
    )
    conversation.refresh_from_db()
    assert (conversation.title, conversation.title_source) == ("Busy title", Conversation.TitleSource.MODEL)
    assert UsageEntry.objects.filter(kind="title").count() == 1  # billed once, whatever the tries
