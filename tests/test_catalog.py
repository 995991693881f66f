"""The model catalog, read from the API (the stand-in over real HTTP) through the SDK."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from conversations.models import ChatModel

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
