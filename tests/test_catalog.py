"""The model catalog, read from the API (the stand-in over real HTTP) through the SDK."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.urls import reverse

from conversations.models import ChatModel, Message

from .chat_sockets import reply_collect

pytestmark = pytest.mark.django_db


def test_models_sync_stores_limits_and_prices_and_adds_new_models_disabled(standin):
    ChatModel.objects.create(name="old/retired-model", label="Retired", enabled=True)
    out = StringIO()

    call_command("models_sync", stdout=out)

    gpt = ChatModel.objects.get(name="openai/gpt-5.1")
    assert (gpt.input_token_limit, gpt.output_token_limit) == (400_000, 128_000)
    assert (gpt.price_input, gpt.price_output, gpt.price_cached) == (
        Decimal("1.25"),
        Decimal("10"),
        Decimal("0.125"),
    )
    assert gpt.capabilities["vision"] is True
    assert (gpt.listed, gpt.enabled, gpt.label) == (True, True, "GPT-5.1")  # the operator's label stays
    mini = ChatModel.objects.get(name="openai/gpt-5.1-mini")
    assert (mini.enabled, mini.label, mini.listed) == (False, "GPT-5.1 mini", True)
    retired = ChatModel.objects.get(name="old/retired-model")
    assert (retired.listed, retired.enabled) == (False, True)  # marked, not switched off behind the operator
    assert "added (disabled): openai/gpt-5.1-mini" in out.getvalue()
    assert "no longer listed: old/retired-model" in out.getvalue()


def test_models_sync_without_a_key_names_the_setting(settings):
    settings.DEDALUS_API_KEY = ""
    with pytest.raises(CommandError, match="DEDALUS_API_KEY"):
        call_command("models_sync")


def test_models_sync_against_an_unreachable_api_names_the_setting(settings):
    settings.DEDALUS_BASE_URL = "http://127.0.0.1:9"
    with pytest.raises(CommandError, match="DEDALUS_BASE_URL"):
        call_command("models_sync")


def test_the_admin_syncs_the_catalog_and_shows_it(staff_client, standin):
    gpt = ChatModel.objects.get(name="openai/gpt-5.1")
    changelist = reverse("admin:conversations_chatmodel_changelist")

    response = staff_client.post(
        changelist, {"action": "catalog_sync", "_selected_action": [gpt.pk]}, follow=True
    )

    assert response.status_code == 200
    assert "added (disabled)" in response.content.decode()
    assert ChatModel.objects.get(pk=gpt.pk).input_token_limit == 400_000
    assert "GPT-5.1 mini" in staff_client.get(changelist).content.decode()


@pytest.mark.django_db(transaction=True)
async def test_a_reply_is_priced_from_the_catalog_and_the_admin_shows_cost_per_reply_day_model_and_user(
    chat_socket, standin, staff_client
):
    await sync_to_async(call_command)("models_sync", stdout=StringIO())
    await chat_socket.send_json_to({"message": "price me [[standin tokens=12 cached_tokens=3]]"})
    frames = await reply_collect(chat_socket)
    done = frames[-1]
    assert done["type"] == "done", done
    usage = done["usage"]
    reply = await Message.objects.aget(pk=done["message_id"])
    # GPT-5.1: 1.25 per million input, 0.125 cached, 10 output (the stand-in's catalog).
    expected = (
        Decimal(usage["prompt_tokens"] - 3) * Decimal("1.25")
        + 3 * Decimal("0.125")
        + Decimal(usage["completion_tokens"]) * Decimal("10")
    ) / 1_000_000
    assert reply.cost == expected.quantize(Decimal("0.00000001"))

    # A price changed later rewrites no past reply.
    await ChatModel.objects.filter(name="openai/gpt-5.1").aupdate(price_output=Decimal("99"))
    await reply.arefresh_from_db()
    assert reply.cost == expected.quantize(Decimal("0.00000001"))

    shown = f"{expected:.4f}"
    replies = await sync_to_async(staff_client.get)(reverse("admin:conversations_message_changelist"))
    assert str(reply.cost) in replies.content.decode()  # per reply
    usage_page = await sync_to_async(staff_client.get)(reverse("admin:conversations_dailyusage_changelist"))
    html = usage_page.content.decode()
    assert f'data-total="cost">${shown}<' in html  # per day (the filtered rows' total)
    by_model = html.split('id="usage-by-model"')[1].split("</table>")[0]
    by_user = html.split('id="usage-by-user"')[1].split("</table>")[0]
    assert "openai/gpt-5.1" in by_model
    assert shown in by_model
    assert "anonymous" in by_user
    assert shown in by_user
    export = await sync_to_async(staff_client.get)(
        reverse("admin:conversations_dailyusage_changelist") + "export.csv"
    )
    (row,) = csv.DictReader(io.StringIO(export.content.decode()))
    assert Decimal(row["cost"]) == expected.quantize(Decimal("0.00000001"))


@pytest.mark.django_db(transaction=True)
async def test_a_model_without_prices_leaves_the_reply_unpriced(chat_socket, standin):
    await chat_socket.send_json_to({"message": "free?"})
    done = (await reply_collect(chat_socket))[-1]
    assert done["type"] == "done"
    assert done["usage"]["total_tokens"] > 0
    reply = await Message.objects.aget(pk=done["message_id"])
    assert reply.cost is None  # seeded models carry no prices until the catalog is synced
