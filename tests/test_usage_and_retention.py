"""Usage accounting in the admin (totals, filters, CSV), admin actions and quotas, and retention."""

from __future__ import annotations

import csv
import io
import re
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from conversations.chat.upkeep import conversations_purge
from conversations.models import ChatModel, Conversation, Message, UserQuota
from conversations.usage_ledger import reply_entries_write

from .chat_sockets import reply_collect

pytestmark = pytest.mark.django_db


def reply_stored(
    conversation: Conversation,
    *,
    model: str,
    tokens: tuple[int, int],
    days_ago: int = 0,
    when: datetime | None = None,
    **fields: Any,
) -> Message:
    """A finished reply with these token counts (and its question), `days_ago` or `when`, with its usage
    ledger entry as its end writes it."""
    when = when or timezone.now() - timedelta(days=days_ago)
    Message.objects.create(conversation=conversation, role="user", content="q", model=model, created_at=when)
    prompt, completion = tokens
    reply = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="a",
        model=model,
        status="complete",
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        created_at=when,
        **fields,
    )
    reply_entries_write([reply.pk])
    return reply


@pytest.fixture
def usage():
    alice = get_user_model().objects.create_user("alice", password="pw-for-tests-only")
    mine = Conversation.objects.create(session_id="a1", owner_key=f"u:{alice.pk}", user=alice)
    anonymous = Conversation.objects.create(session_id="s1", owner_key="s:abc")
    replies = [
        reply_stored(mine, model="openai/gpt-5.1", tokens=(10, 20)),
        reply_stored(mine, model="openai/gpt-5.1", tokens=(5, 5)),
        reply_stored(mine, model="google/gemini-3-pro-preview", tokens=(1, 2), days_ago=1),
        reply_stored(anonymous, model="openai/gpt-5.1", tokens=(7, 8), days_ago=3),
    ]
    return replies


def totals_shown(html: str) -> dict[str, int]:
    return {key: int(value) for key, value in re.findall(r'data-total="(\w+)">(\d+)<', html)}


def test_usage_totals_equal_the_stored_replies_usage(staff_client, usage):
    page = staff_client.get(reverse("admin:conversations_dailyusage_changelist"))
    assert page.status_code == 200
    shown = totals_shown(page.content.decode())
    assert shown == {
        "replies": len(usage),
        "prompt_tokens": sum(m.prompt_tokens for m in usage),
        "completion_tokens": sum(m.completion_tokens for m in usage),
        "total_tokens": sum(m.total_tokens for m in usage),
    }


def test_usage_filters_by_model_and_date_and_the_csv_follows_them(staff_client, usage):
    url = reverse("admin:conversations_dailyusage_changelist")
    page = staff_client.get(url, {"model": "openai/gpt-5.1"})
    assert totals_shown(page.content.decode())["total_tokens"] == 30 + 10 + 15
    today = timezone.now().date()
    page = staff_client.get(url, {"day__gte": today.isoformat()})
    assert totals_shown(page.content.decode()) == {
        "replies": 2,
        "prompt_tokens": 15,
        "completion_tokens": 25,
        "total_tokens": 40,
    }

    export = staff_client.get(url + "export.csv", {"model": "openai/gpt-5.1"})
    assert export["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert {row["model"] for row in rows} == {"openai/gpt-5.1"}
    assert sum(int(row["total_tokens"]) for row in rows) == 55
    assert sum(int(row["replies"]) for row in rows) == 3
    by_owner = {row["owner_key"]: row for row in rows}
    assert by_owner["s:abc"]["user"] == ""
    assert by_owner[[k for k in by_owner if k.startswith("u:")][0]]["user"] == "alice"


def test_usage_is_read_only_in_the_admin(staff_client, usage):
    assert staff_client.get(reverse("admin:conversations_dailyusage_add")).status_code == 403


@pytest.mark.django_db(transaction=True)
async def test_disabling_a_model_lets_its_reply_in_flight_finish(chat_socket, standin, async_client):
    from asgiref.sync import sync_to_async

    admin = await sync_to_async(get_user_model().objects.create_superuser)(
        "ops2", "o@example.com", "pw-x-1234"
    )
    await sync_to_async(async_client.force_login)(admin)
    await chat_socket.send_json_to(
        {"message": "slow [[standin tokens=60 delay_ms=10]]", "model": "openai/gpt-5.1"}
    )
    assert (await chat_socket.receive_json_from())["type"] == "start"
    model = await ChatModel.objects.aget(name="openai/gpt-5.1")
    response = await async_client.post(
        reverse("admin:conversations_chatmodel_changelist"),
        {"action": "disable", "_selected_action": [model.pk]},
    )
    assert response.status_code == 302
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done"  # the reply in flight finished
    await chat_socket.send_json_to({"message": "again", "model": "openai/gpt-5.1"})
    assert (await chat_socket.receive_json_from())["code"] == "unknown_model"


@pytest.mark.django_db(transaction=True)
def test_a_users_own_quota_wins_over_the_default(settings):
    from conversations.chat.quotas import daily_quota_for

    settings.CHAT_DAILY_TOKEN_QUOTA = 1000
    user = get_user_model().objects.create_user("quoted", password="pw-for-tests-only")
    assert daily_quota_for(owner_key=f"u:{user.pk}") == 1000
    UserQuota.objects.create(user=user, daily_tokens=50)
    assert daily_quota_for(owner_key=f"u:{user.pk}") == 50
    assert daily_quota_for(owner_key="s:someone") == 1000


def test_the_quota_admin_sets_a_users_quota(staff_client):
    user = get_user_model().objects.create_user("limited", password="pw-for-tests-only")
    response = staff_client.post(
        reverse("admin:conversations_userquota_add"), {"user": user.pk, "daily_tokens": 5000}
    )
    assert response.status_code == 302
    assert UserQuota.objects.get(user=user).daily_tokens == 5000


def test_retention_deletes_exactly_the_old_conversations():
    now = timezone.now()
    old, recent, streaming_old = (
        Conversation.objects.create(session_id=sid, owner_key="public") for sid in ("old", "recent", "busy")
    )
    for conversation in (old, recent, streaming_old):
        reply_stored(conversation, model="openai/gpt-5.1", tokens=(1, 1))
    Message.objects.filter(conversation=streaming_old, role="assistant").update(status="streaming")
    Conversation.objects.filter(pk__in=[old.pk, streaming_old.pk]).update(updated_at=now - timedelta(days=40))
    Conversation.objects.filter(pk=recent.pk).update(updated_at=now - timedelta(days=10))

    out = io.StringIO()
    call_command("chat_retention", "--days", "30", "--dry-run", stdout=out)
    assert "would delete 1 " in out.getvalue()
    assert Conversation.objects.count() == 3

    call_command("chat_retention", "--days", "30", "--batch-size", "1", stdout=out)
    assert set(Conversation.objects.values_list("session_id", flat=True)) == {"recent", "busy"}
    assert not Message.objects.filter(conversation_id=old.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_retention_skips_a_conversation_whose_turn_holds_its_lock_and_leaves_the_turn_whole():
    """A turn locks its conversation row (`_conversations_locked`), stores its messages and commits; a purge
    that runs meanwhile neither waits for it nor deletes the conversation under it."""
    long_ago = timezone.now() - timedelta(days=40)
    busy, stale = (Conversation.objects.create(session_id=sid, owner_key="public") for sid in ("busy", "old"))
    for conversation in (busy, stale):
        reply_stored(conversation, model="openai/gpt-5.1", tokens=(1, 1))
    Conversation.objects.filter(pk__in=[busy.pk, stale.pk]).update(updated_at=long_ago)
    locked, release, purged = threading.Event(), threading.Event(), []

    def turn() -> None:
        try:
            with transaction.atomic():
                conversation = Conversation.objects.select_for_update().get(pk=busy.pk)
                Message.objects.create(conversation=conversation, role="user", content="a new question")
                Message.objects.create(conversation=conversation, role="assistant", status="streaming")
                conversation.save(update_fields=["updated_at"])
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    def purge() -> None:
        try:
            purged.append(conversations_purge(older_than_days=30))
        finally:
            connection.close()

    turn_thread, purge_thread = threading.Thread(target=turn), threading.Thread(target=purge)
    turn_thread.start()
    assert locked.wait(5)
    purge_thread.start()
    purge_thread.join(3)
    finished_while_the_turn_held_the_lock = not purge_thread.is_alive()
    release.set()
    turn_thread.join(10)
    purge_thread.join(10)

    assert finished_while_the_turn_held_the_lock
    assert purged == [1]
    assert set(Conversation.objects.values_list("session_id", flat=True)) == {"busy"}
    assert Message.objects.filter(conversation_id=busy.pk).count() == 4


def test_retention_needs_a_number_of_days(settings):
    from django.core.management.base import CommandError

    settings.CHAT_RETENTION_DAYS = 0
    with pytest.raises(CommandError, match="CHAT_RETENTION_DAYS"):
        call_command("chat_retention")


@pytest.mark.parametrize(
    ("username", "model"),
    [
        ("-2+3", '=HYPERLINK("https://evil.example","x")'),
        ("+1-1", "@SUM(1+1)*cmd|' /C calc'!A0"),
        ("@admin", "\t=1+1"),
        ("x", "\r=1+1"),
    ],
)
def test_the_usage_csv_neutralises_cells_a_spreadsheet_would_read_as_formulas(staff_client, username, model):
    user = get_user_model().objects.create_user(username, password="pw-for-tests-only")
    mine = Conversation.objects.create(session_id="f1", owner_key=f"u:{user.pk}", user=user)
    reply_stored(mine, model=model, tokens=(3, 4))

    export = staff_client.get(reverse("admin:conversations_dailyusage_changelist") + "export.csv")
    (row,) = list(csv.DictReader(io.StringIO(export.content.decode(), newline="")))
    # Text that starts like a formula is kept, behind an apostrophe; numbers stay numbers.
    if username[0] in "=+-@":
        assert row["user"] == "'" + username
    else:
        assert row["user"] == username
    assert row["model"] == "'" + model
    assert (row["total_tokens"], row["owner_key"]) == ("7", f"u:{user.pk}")
