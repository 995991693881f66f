"""Budgets per group and per user (docs/teams.md, "Budgets"): caps in tokens and in money, per UTC day and
calendar month, read from the usage ledger with replies still streaming counted; the rule between a
user's own and their groups'; refused turns store nothing; `manage.py budget_set`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import aiohttp
import openai
import orjson
import pytest
import time_machine
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import Client

from conversations import metrics
from conversations.exceptions import BudgetExceeded
from conversations.models import Budget, ChatModel, Conversation, Message, UsageEntry
from conversations.teams.budgets import budget_check, budgeted_users, user_allowance
from conversations.usage_ledger import call_entry_write

from .chat_sockets import reply_collect
from .openai_clients import client, completions_server, key_for, page_tab
from .processes import DaphneServer
from .rows import reply_row
from .standin_control import StandIn
from .test_isolation_and_auth import browser_signed_in, socket_as

pytestmark = pytest.mark.django_db(transaction=True)


def user_made(username: str, *groups: str) -> int:
    user = get_user_model().objects.create_user(username, password="pw-for-tests-only")
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user.pk


def spend(user_id: int, *, tokens: int = 0, cost: str | None = None) -> None:
    """A billed call of the user's, appended to the ledger as a title's would be (now, by the clock)."""
    call_entry_write(
        kind=UsageEntry.Kind.TITLE,
        owner_key=f"u:{user_id}",
        model="openai/gpt-5.1",
        usage={"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
        cost=None if cost is None else Decimal(cost),
    )


def budget(*, group: str | None = None, user_id: int | None = None, unit="tokens", amount, period="day"):
    subject = {"group": Group.objects.get_or_create(name=group)[0]} if group else {"user_id": user_id}
    return Budget.objects.create(**subject, unit=unit, amount=Decimal(amount), period=period)


def refusal(user_id: int) -> BudgetExceeded | None:
    try:
        budget_check(user_id=user_id)
    except BudgetExceeded as exc:
        return exc
    return None


# The rule ------------------------------------------------------------------------------------------------


def test_a_user_in_no_group_and_without_a_budget_is_not_capped():
    ada = user_made("ada")
    spend(ada, tokens=10**6)
    assert user_allowance(user_id=ada) is None
    assert refusal(ada) is None


def test_a_groups_budget_caps_each_member_not_the_group_together():
    ada, bob = user_made("ada", "team"), user_made("bob", "team")
    budget(group="team", amount=100)
    spend(ada, tokens=100)
    assert refusal(ada).code == "budget_exceeded"
    assert refusal(bob) is None  # ada's spending is not bob's
    spend(bob, tokens=99)
    assert refusal(bob) is None


def test_the_most_generous_group_governs_and_one_unbudgeted_group_lifts_the_group_cap():
    ada = user_made("ada", "small", "large")
    budget(group="small", amount=50)
    budget(group="large", amount=500)
    spend(ada, tokens=100)
    allowance = user_allowance(user_id=ada)
    assert (allowance.subject, allowance.tightest.left) == ("group large", Decimal(400))
    assert refusal(ada) is None
    spend(ada, tokens=400)
    assert "group large" in refusal(ada).message or "group small" in refusal(ada).message

    ada_user = get_user_model().objects.get(pk=ada)
    ada_user.groups.add(Group.objects.create(name="unbudgeted"))
    assert user_allowance(user_id=ada) is None
    assert refusal(ada) is None


def test_a_users_own_budget_replaces_their_groups():
    ada = user_made("ada", "team")
    budget(group="team", amount=1000)
    budget(user_id=ada, amount=10)
    spend(ada, tokens=10)
    assert refusal(ada).code == "budget_exceeded"  # the group's room does not count
    Budget.objects.filter(user_id=ada).update(amount=Decimal(5000))
    assert user_allowance(user_id=ada).subject == "user"
    assert refusal(ada) is None


def test_a_day_and_a_month_budget_both_apply():
    ada = user_made("ada")
    budget(user_id=ada, amount=1000, period="day")
    budget(user_id=ada, amount=300, period="month")
    spend(ada, tokens=300)
    exc = refusal(ada)
    assert exc is not None
    assert "per calendar month" in exc.message


def test_a_refusal_names_the_cap_in_words_one_token_or_many():
    ada = user_made("ada")
    budget(user_id=ada, amount=1, period="day")
    spend(ada, tokens=1)
    assert "of 1 token per UTC day is spent" in refusal(ada).message
    Budget.objects.update(amount=1200)
    spend(ada, tokens=1200)
    assert "of 1,200 tokens per UTC day is spent" in refusal(ada).message


def test_a_money_budget_counts_the_ledgers_cost():
    ada = user_made("ada")
    budget(user_id=ada, unit="usd", amount="0.50")
    spend(ada, tokens=10**6, cost="0.30")
    assert refusal(ada) is None
    assert user_allowance(user_id=ada).tightest.left == Decimal("0.20")
    spend(ada, tokens=1, cost="0.20")
    assert refusal(ada).code == "budget_exceeded"


def test_a_turn_batch_reads_once_which_of_its_users_a_budget_names():
    ada, bob, cy = user_made("ada", "team"), user_made("bob"), user_made("cy", "free")
    budget(group="team", amount=10)
    budget(user_id=bob, amount=10)
    assert budgeted_users({ada, bob, cy}) == {ada, bob}
    assert budgeted_users(set()) == set()


# Periods, on a frozen clock ------------------------------------------------------------------------------


def test_a_day_budget_resets_at_midnight_utc():
    ada = user_made("ada")
    budget(user_id=ada, amount=100)
    with time_machine.travel(datetime(2026, 3, 31, 23, 0, tzinfo=UTC), tick=False):
        spend(ada, tokens=100)
        exc = refusal(ada)
        assert exc.details["resets_at"] == "2026-04-01T00:00:00Z"
        assert exc.details["retry_after"] == 3601
    with time_machine.travel(datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC), tick=False):
        assert refusal(ada) is None
        assert user_allowance(user_id=ada).tightest.spent == 0


def test_a_month_budget_holds_across_days_and_resets_on_the_first():
    ada = user_made("ada")
    budget(user_id=ada, unit="usd", amount="1", period="month")
    with time_machine.travel(datetime(2026, 2, 3, 12, 0, tzinfo=UTC), tick=False):
        spend(ada, cost="0.60")
    with time_machine.travel(datetime(2026, 2, 27, 9, 0, tzinfo=UTC), tick=False):
        assert refusal(ada) is None
        spend(ada, cost="0.40")
        assert refusal(ada).details["resets_at"] == "2026-03-01T00:00:00Z"
    with time_machine.travel(datetime(2026, 2, 28, 23, 59, tzinfo=UTC), tick=False):
        assert refusal(ada) is not None
    with time_machine.travel(datetime(2026, 3, 1, 0, 0, tzinfo=UTC), tick=False):
        assert refusal(ada) is None


def test_with_a_day_and_a_month_spent_the_refusal_names_the_budget_it_waits_for():
    ada = user_made("ada")
    for period in ("month", "day"):  # whatever order the budgets are read in
        budget(user_id=ada, amount=10, period=period)
    with time_machine.travel(datetime(2026, 5, 10, 8, 0, tzinfo=UTC), tick=False):
        spend(ada, tokens=10)
        exc = refusal(ada)
        assert exc.details["resets_at"] == "2026-06-01T00:00:00Z"
        assert exc.message == (
            "Your budget of 10 tokens per calendar month (UTC) is spent; it resets at 2026-06-01 00:00 UTC."
        )


def test_when_every_group_is_spent_the_refusal_says_when_the_first_renews():
    ada = user_made("ada", "daily", "monthly")
    budget(group="daily", amount=10, period="day")
    budget(group="monthly", amount=10, period="month")
    with time_machine.travel(datetime(2026, 5, 10, 8, 0, tzinfo=UTC), tick=False):
        spend(ada, tokens=10)
        assert refusal(ada).details["resets_at"] == "2026-05-11T00:00:00Z"


# Through the chat socket ---------------------------------------------------------------------------------


async def test_over_the_budget_the_socket_gets_budget_exceeded_and_nothing_is_stored(standin, replies_settle):
    browser = await browser_signed_in("ada")
    user = await get_user_model().objects.aget(username="ada")
    await sync_to_async(budget)(user_id=user.pk, amount=40)
    socket = await socket_as(browser, "/ws/chat/b1/")
    assert (await socket.receive_json_from())["type"] == "history"
    await socket.send_json_to({"message": "spend [[standin tokens=45]]"})
    assert (await reply_collect(socket))[-1]["type"] == "done"

    refusals = metrics.REFUSALS.labels("budget_exceeded")._value.get()
    await socket.send_json_to({"message": "one more"})
    refused = await socket.receive_json_from()
    assert metrics.REFUSALS.labels("budget_exceeded")._value.get() == refusals + 1
    assert (refused["type"], refused["code"]) == ("error", "budget_exceeded")
    assert refused["resets_at"].endswith("T00:00:00Z")
    assert not await Message.objects.filter(content="one more").aexists()
    await socket.send_json_to({"type": "history"})  # the socket stays usable
    assert (await socket.receive_json_from())["type"] == "history"
    await socket.disconnect()


async def test_a_money_budget_counts_a_replys_cost_at_the_catalogs_prices(standin, replies_settle):
    await ChatModel.objects.filter(is_default=True).aupdate(
        price_input=Decimal("1000"), price_output=Decimal("1000")
    )
    browser = await browser_signed_in("ada")
    user = await get_user_model().objects.aget(username="ada")
    await sync_to_async(budget)(user_id=user.pk, unit="usd", amount="0.05")
    socket = await socket_as(browser, "/ws/chat/b1/")
    await socket.receive_json_from()
    await socket.send_json_to({"message": "priced [[standin tokens=60]]"})  # 60+ tokens at $1000/M: $0.06+
    assert (await reply_collect(socket))[-1]["type"] == "done"
    entry = await UsageEntry.objects.aget()
    assert entry.cost > Decimal("0.05")
    await socket.send_json_to({"message": "again"})
    assert (await socket.receive_json_from())["code"] == "budget_exceeded"
    await socket.disconnect()


async def test_a_reply_still_streaming_counts_against_the_budget(standin, replies_settle):
    browser = await browser_signed_in("ada")
    user = await get_user_model().objects.aget(username="ada")
    first = await socket_as(browser, "/ws/chat/s1/")
    await first.receive_json_from()
    await first.send_json_to({"message": "long [[standin tokens=300 delay_ms=20]]"})
    start = await first.receive_json_from()
    assert start["type"] == "start"
    await Message.objects.filter(pk=start["message_id"]).aupdate(content="x" * 400)  # as a flush would
    assert not await UsageEntry.objects.aexists()  # nothing ended yet: only the streaming text counts
    await sync_to_async(budget)(user_id=user.pk, amount=100)  # 400 characters are 100 tokens

    second = await socket_as(browser, "/ws/chat/s2/")
    await second.receive_json_from()
    await second.send_json_to({"message": "while the first streams"})
    assert (await second.receive_json_from())["code"] == "budget_exceeded"
    await first.send_json_to({"type": "stop"})
    await reply_collect(first)
    for socket in (first, second):
        await socket.disconnect()


async def test_deleting_the_chat_that_spent_the_budget_does_not_free_it(standin, replies_settle):
    browser = await browser_signed_in("ada")
    user = await get_user_model().objects.aget(username="ada")
    await sync_to_async(budget)(user_id=user.pk, amount=30, period="month")
    socket = await socket_as(browser, "/ws/chat/gone/")
    await socket.receive_json_from()
    await socket.send_json_to({"message": "spend [[standin tokens=40]]"})
    assert (await reply_collect(socket))[-1]["type"] == "done"
    await socket.disconnect()
    assert (await sync_to_async(browser.post)("/c/gone/delete")).status_code == 200
    assert not await Conversation.objects.aexists()

    fresh = await socket_as(browser, "/ws/chat/fresh/")
    await fresh.receive_json_from()
    await fresh.send_json_to({"message": "a fresh chat"})
    assert (await fresh.receive_json_from())["code"] == "budget_exceeded"
    assert not await Conversation.objects.aexists()  # the refused chat is not kept either
    await fresh.disconnect()


# Through live servers: the API, and two instances ------------------------------------------------------

MODEL = "openai/gpt-5.1"


@pytest.fixture(scope="module")
def api_server(
    standin_server: StandIn, tmp_path_factory: pytest.TempPathFactory, django_db_setup: None
) -> Iterator[DaphneServer]:
    server = completions_server(
        standin_server, Path(tmp_path_factory.mktemp("budget-logs")), messages_per_minute=60
    )
    yield server
    server.stop()


async def tab_send(tab: aiohttp.ClientWebSocketResponse, text: str) -> list[dict]:
    """Send a message on a page's tab (past its history) and read up to the reply's end or refusal."""
    await tab.send_str(orjson.dumps({"message": text}).decode())
    frames: list[dict] = []
    while not frames or frames[-1]["type"] not in ("done", "error"):
        frames.append(orjson.loads((await tab.receive(timeout=15)).data))
    return frames


@pytest.mark.subprocess
async def test_an_api_key_spends_from_the_users_budget_and_over_it_gets_an_openai_429(api_server, standin):
    key = await sync_to_async(key_for)("ada")
    user = await get_user_model().objects.aget(username="ada")
    await sync_to_async(budget)(user_id=user.pk, amount=40)
    api = client(api_server, key)
    await sync_to_async(api.chat.completions.create)(
        model=MODEL, messages=[{"role": "user", "content": "spend [[standin tokens=45]]"}]
    )
    with pytest.raises(openai.RateLimitError) as refused:
        await sync_to_async(api.chat.completions.create)(
            model=MODEL, messages=[{"role": "user", "content": "over the budget"}]
        )
    body = refused.value.body
    assert (body["code"], body["type"], body["param"]) == ("budget_exceeded", "rate_limit_error", None)
    assert "resets at" in body["message"]
    assert int(refused.value.response.headers["Retry-After"]) > 0
    assert not await Message.objects.filter(content="over the budget").aexists()

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        tab = await page_tab(http, api_server, "page-after-api")
        assert orjson.loads((await tab.receive(timeout=10)).data)["type"] == "history"
        refused_frame = (await tab_send(tab, "from the page"))[-1]
        await tab.close()
    assert (refused_frame["type"], refused_frame["code"]) == ("error", "budget_exceeded")
    assert refused_frame["message"] == body["message"]


@pytest.mark.subprocess
async def test_two_instances_share_the_budget(instances):
    a, b = instances
    user_id = await sync_to_async(user_made)("ada", "team")
    await sync_to_async(budget)(group="team", amount=40, period="month")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        on_a = await page_tab(http, a, "budget-a")
        await on_a.receive(timeout=10)
        assert (await tab_send(on_a, "spend [[standin tokens=45]]"))[-1]["type"] == "done"
        on_b = await page_tab(http, b, "budget-b")
        await on_b.receive(timeout=10)
        refused = (await tab_send(on_b, "on the other instance"))[-1]
        for tab in (on_a, on_b):
            await tab.close()
    assert (refused["type"], refused["code"]) == ("error", "budget_exceeded")
    assert refused["resets_at"].endswith("-01T00:00:00Z")
    assert user_id


# What the page reads -------------------------------------------------------------------------------------


def test_the_page_reads_what_is_left_and_whether_it_runs_low():
    ada = user_made("ada", "team")
    budget(group="team", amount=1000)
    client = Client()
    client.force_login(get_user_model().objects.get(pk=ada))
    spend(ada, tokens=700)
    answer = client.get("/api/budget/").json()["allowance"]
    assert (answer["subject"], answer["unit"], answer["left"], answer["low"]) == (
        "group team",
        "tokens",
        300,
        False,
    )
    spend(ada, tokens=150)
    answer = client.get("/api/budget/").json()["allowance"]
    assert (answer["left"], answer["low"], answer["spent_up"]) == (150, True, False)
    assert Client().get("/api/budget/").json() == {"allowance": None}


def test_a_streaming_rows_text_is_counted_and_priced_at_its_models_output_price():
    ada = user_made("ada")
    ChatModel.objects.filter(name="openai/gpt-5.1").update(price_input=Decimal(1), price_output=Decimal(2000))
    budget(user_id=ada, unit="usd", amount="1")
    conversation = Conversation.objects.create(session_id="c", owner_key=f"u:{ada}", user_id=ada)
    reply_row(conversation, status="streaming", model="openai/gpt-5.1", content="x" * 400)
    assert user_allowance(user_id=ada).tightest.spent == Decimal("0.2")  # 100 tokens at $2000/M


# manage.py budget_set ------------------------------------------------------------------------------------


def test_budget_set_sets_replaces_and_clears():
    ada = user_made("ada")
    Group.objects.create(name="team")
    call_command("budget_set", "--group", "team", "--tokens", "5000", "--per", "day")
    call_command("budget_set", "--group", "team", "--usd", "12.50", "--per", "month")
    call_command("budget_set", "--user", "ada", "--tokens", "100", "--per", "day")
    call_command("budget_set", "--user", "ada", "--usd", "3", "--per", "day")  # replaces the day's
    rows = {(str(b.group or b.user), b.unit, b.amount, b.period) for b in Budget.objects.all()}
    assert rows == {
        ("team", "tokens", Decimal(5000), "day"),
        ("team", "usd", Decimal("12.5"), "month"),
        ("ada", "usd", Decimal(3), "day"),
    }
    call_command("budget_set", "--group", "team", "--clear", "--per", "day")
    assert set(Budget.objects.filter(group__name="team").values_list("period", flat=True)) == {"month"}
    call_command("budget_set", "--group", "team", "--clear")
    call_command("budget_set", "--user", "ada", "--clear")
    assert not Budget.objects.exists()
    assert ada


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--group", "nobody", "--tokens", "1", "--per", "day"], "No group named 'nobody'"),
        (["--user", "nobody", "--tokens", "1", "--per", "day"], "No user named 'nobody'"),
        (["--user", "ada", "--tokens", "1.5", "--per", "day"], "--tokens must be a whole number"),
        (["--user", "ada", "--usd", "ten", "--per", "day"], "--usd must be a number"),
        (["--user", "ada", "--usd", "-1", "--per", "day"], "--usd must be between 0"),
        (["--user", "ada", "--usd", "NaN", "--per", "day"], "--usd must be between 0"),
        (["--user", "ada", "--tokens", "5"], "Give --per day or --per month"),
        (["--user", "ada", "--per", "day"], "Give --tokens N or --usd AMOUNT"),
        (["--user", "ada", "--tokens", "5", "--per", "week"], "invalid choice"),
        (["--user", "ada", "--tokens", "5", "--usd", "1", "--per", "day"], "not allowed with"),
        (["--tokens", "5", "--per", "day"], "one of the arguments --group --user is required"),
        (["--group", "team", "--user", "ada", "--tokens", "5", "--per", "day"], "not allowed with"),
    ],
)
def test_budget_set_refuses_what_it_cannot_set(arguments, said):
    user_made("ada")
    Group.objects.create(name="team")
    with pytest.raises(CommandError, match=said):
        call_command("budget_set", *arguments)
    assert not Budget.objects.exists()


# The admin -----------------------------------------------------------------------------------------------


def test_the_admin_edits_budgets_and_shows_spending_per_group_and_per_user(staff_client):
    ada, bob = user_made("ada", "team"), user_made("bob", "team")
    user_made("cy", "team", "free")  # a member of an unbudgeted group: no cap
    budget(group="team", amount=100)
    budget(user_id=bob, unit="usd", amount="2", period="month")
    spend(ada, tokens=120)
    spend(bob, tokens=30, cost="0.5")

    page = staff_client.get("/admin/conversations/budget/")
    assert page.status_code == 200
    groups = page.context["groups_spending"]
    assert [(row.budget.group.name, row.members, row.highest, row.total, row.spent_up) for row in groups] == [
        ("team", 3, Decimal(120), Decimal(150), 1)
    ]
    users = {name: allowance for name, allowance in page.context["users_spending"]}
    assert set(users) == {"ada", "bob"}
    assert (users["ada"].subject, users["ada"].spent_up) == ("group team", True)
    assert (users["bob"].subject, users["bob"].tightest.left) == ("user", Decimal("1.5"))
    html = page.content.decode()
    assert 'id="budget-groups"' in html
    assert 'id="budget-users"' in html

    team = Group.objects.get(name="team")
    added = staff_client.post(
        "/admin/conversations/budget/add/",
        {"group": team.pk, "user": "", "unit": "usd", "amount": "5", "period": "month"},
    )
    assert added.status_code == 302
    assert Budget.objects.filter(group=team, unit="usd", period="month").exists()
    both = staff_client.post(
        "/admin/conversations/budget/add/",
        {"group": team.pk, "user": ada, "unit": "tokens", "amount": "5", "period": "day"},
    )
    assert both.status_code == 200  # refused: a group or a user, not both
    assert Budget.objects.count() == 3
