"""The usage page's charts: their data (json_script, never inline code) sums exactly the filtered rows per
day, model and user; the from/to filter drives the list, the charts and the CSV; a bad date is refused."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from conversations.models import Conversation, Message

from .test_usage_and_retention import reply_stored as usage_reply_stored

pytestmark = pytest.mark.django_db

USAGE_URL = "/admin/conversations/dailyusage/"
TODAY = date.today()


def day(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


def reply_stored(
    conversation: Conversation, *, model: str, tokens: tuple[int, int], days_ago: int, cost: str | None
) -> Message:
    noon = datetime.combine(TODAY - timedelta(days=days_ago), datetime.min.time()) + timedelta(hours=12)
    return usage_reply_stored(
        conversation,
        model=model,
        tokens=tokens,
        when=timezone.make_aware(noon),
        cost=None if cost is None else Decimal(cost),
    )


@pytest.fixture
def usage():
    alice = get_user_model().objects.create_user("alice", password="pw-for-tests-only")
    mine = Conversation.objects.create(session_id="a1", owner_key=f"u:{alice.pk}", user=alice)
    first = Conversation.objects.create(session_id="s1", owner_key="s:one")
    second = Conversation.objects.create(session_id="s2", owner_key="s:two")
    reply_stored(mine, model="openai/gpt-5.1", tokens=(10, 20), days_ago=0, cost="0.5")
    reply_stored(mine, model="openai/gpt-5.1", tokens=(5, 5), days_ago=0, cost="0.25")
    reply_stored(mine, model="google/gemini-3-pro-preview", tokens=(1, 2), days_ago=1, cost=None)
    reply_stored(first, model="openai/gpt-5.1", tokens=(7, 8), days_ago=1, cost="0.125")
    reply_stored(second, model="openai/gpt-5.1", tokens=(100, 200), days_ago=3, cost="1")
    reply_stored(second, model="google/gemini-3-pro-preview", tokens=(40, 60), days_ago=9, cost=None)


def chart_data(html: str) -> dict:
    match = re.search(r'<script id="usage-chart-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page carries the charts' data as json_script"
    return json.loads(match[1])


def test_the_charts_sum_the_filtered_rows_per_day_model_and_user(staff_client, usage):
    page = staff_client.get(USAGE_URL, {"day__gte": day(3), "day__lte": day(0)})
    assert page.status_code == 200
    data = chart_data(page.content.decode())

    assert data["days"] == {
        "labels": [day(3), day(1), day(0)],
        "replies": [1, 2, 2],
        "prompt_tokens": [100, 8, 15],
        "completion_tokens": [200, 10, 25],
        "total_tokens": [300, 18, 40],
        "cost": [1.0, 0.125, 0.75],
    }
    models = dict(zip(data["models"]["labels"], data["models"]["total_tokens"], strict=True))
    assert models == {"openai/gpt-5.1": 355, "google/gemini-3-pro-preview": 3}
    costs = dict(zip(data["models"]["labels"], data["models"]["cost"], strict=True))
    assert costs == {"openai/gpt-5.1": 1.875, "google/gemini-3-pro-preview": None}  # unpriced: empty, not 0
    # Anonymous sessions are one "anonymous", never their keys.
    users = dict(zip(data["users"]["labels"], data["users"]["replies"], strict=True))
    assert users == {"anonymous": 2, "alice": 3}


def test_the_date_range_drives_the_list_and_the_csv_as_well(staff_client, usage):
    query = {"day__gte": day(1), "day__lte": day(1)}
    page = staff_client.get(USAGE_URL, query).content.decode()
    assert chart_data(page)["days"]["labels"] == [day(1)]
    assert len(re.findall(r'<tr[^>]*>\s*<td class="field-day', page)) == 2
    assert 'value="' + day(1) + '"' in page  # the filter shows the range it applied

    export = staff_client.get(USAGE_URL + "export.csv", query)
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert {row["day"] for row in rows} == {day(1)}
    assert sum(int(row["total_tokens"]) for row in rows) == 18
    assert {row["user"] for row in rows} == {"alice", ""}


def test_a_bad_date_filters_nothing_and_says_so(staff_client, usage):
    page = staff_client.get(USAGE_URL, {"day__gte": "yesterday", "day__lte": day(0)})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Enter a valid date." in html
    assert len(chart_data(html)["days"]["labels"]) == 4  # every day, as without a filter
    backwards = staff_client.get(USAGE_URL, {"day__gte": day(0), "day__lte": day(3), "_facets": "True"})
    assert backwards.status_code == 200  # with the filters' counts shown too
    assert "The first date must not come after the second." in backwards.content.decode()
    impossible = staff_client.get(USAGE_URL, {"day__lte": "2026-02-30"})
    assert "Enter a valid date." in impossible.content.decode()


def test_without_any_prices_costs_are_empty_and_the_page_still_draws(staff_client):
    conversation = Conversation.objects.create(session_id="s9", owner_key="s:nine")
    reply_stored(conversation, model="openai/gpt-5.1", tokens=(1, 1), days_ago=0, cost=None)
    data = chart_data(staff_client.get(USAGE_URL).content.decode())
    assert data["days"]["cost"] == [None]
    assert data["users"]["labels"] == ["anonymous"]


def test_the_usage_page_runs_no_inline_script_and_loads_the_charts_from_static_files(staff_client, usage):
    page = staff_client.get(USAGE_URL)
    html = page.content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    inline = [attrs for attrs, body in scripts if body.strip() and 'type="application/json"' not in attrs]
    assert inline == []
    assert "vendor/chartjs/chart.umd.min.js" in html
    assert "conversations/usage-charts.js" in html
    assert "script-src 'self'" in page["Content-Security-Policy"]
    for chart in ["usage-chart-day", "usage-chart-model", "usage-chart-user"]:
        canvas = re.search(rf'<canvas id="{chart}"[^>]*>', html)
        assert canvas
        assert 'role="img"' in canvas[0]
        assert "aria-describedby=" in canvas[0]


def test_the_charts_cost_one_grouped_query_each(staff_client, usage, django_assert_num_queries):
    # Session and user; the list's two counts and its page; one grouped query per chart (day, model,
    # user); the totals; the date hierarchy's range and months; the model and group filters' choices.
    with django_assert_num_queries(13):
        assert staff_client.get(USAGE_URL).status_code == 200


def test_the_group_filter_drives_the_list_and_the_charts(staff_client, usage):
    team = Group.objects.create(name="team")
    get_user_model().objects.get(username="alice").groups.add(team)
    Group.objects.create(name="empty")
    page = staff_client.get(USAGE_URL, {"group": str(team.pk)}).content.decode()
    data = chart_data(page)
    assert data["users"]["labels"] == ["alice"]
    assert sum(data["days"]["total_tokens"]) == 30 + 10 + 3
    assert ">empty<" in page  # every group is offered
    nobody = chart_data(
        staff_client.get(USAGE_URL, {"group": str(Group.objects.get(name="empty").pk)}).content.decode()
    )
    assert nobody["users"]["labels"] == []


def test_the_usage_page_shows_per_user_names(staff_client, usage):
    html = staff_client.get(USAGE_URL).content.decode()
    table = re.search(r'<table id="usage-by-user">.*?</table>', html, re.S)[0]
    assert re.findall(r"<tr><td>([^<]+)</td>", table) == ["anonymous", "alice"]  # the costliest first
    assert "s:one" not in html


def test_the_csv_export_still_works_unfiltered(staff_client, usage):
    export = staff_client.get(reverse("admin:conversations_dailyusage_csv"))
    assert export["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert sum(int(row["replies"]) for row in rows) == 6


def test_the_range_form_keeps_the_other_filters_and_any_date_drops_only_the_range(staff_client, usage):
    html = staff_client.get(
        USAGE_URL, {"model": "openai/gpt-5.1", "q": "alice", "day__gte": day(1), "day__lte": day(0)}
    ).content.decode()
    form = re.search(r'<form method="get" class="date-range-filter".*?</form>', html, re.S)[0]
    assert '<input type="hidden" name="model" value="openai/gpt-5.1">' in form
    assert '<input type="hidden" name="q" value="alice">' in form
    assert not [tag for tag in re.findall(r'<input type="hidden"[^>]*>', form) if 'name="day__' in tag]
    reset = re.search(r'<a href="([^"]*)">Any date</a>', form)[1]
    assert "day__" not in reset
    assert "model=openai" in reset
