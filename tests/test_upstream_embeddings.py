"""Texts embedded through the API (the stand-in, over real HTTP, through the SDK): batched within its
input count and token limits, retried after a 429 or a 5xx, vectors in input order and as wide as
expected (never padded or cut), each request billed in the usage ledger, where budgets read it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model

from conversations.exceptions import UpstreamError
from conversations.models import ChatModel, UsageEntry
from conversations.teams.budget_settings import budget_set
from conversations.teams.budgets import user_allowance
from conversations.upstream import EmbeddingWidthMismatch, texts_embed
from conversations.upstream.embeddings import MAX_INPUTS, TOKENS_PER_BATCH

pytestmark = pytest.mark.django_db

SMALL = "openai/text-embedding-3-small"
OWNER = "s:reader"


def embedding_requests(standin) -> list[dict]:
    return [record for record in standin.requests() if record["kind"] == "embedding"]


def test_texts_are_batched_by_count_and_come_back_in_order(standin):
    texts = [f"item number {index}" for index in range(2 * MAX_INPUTS + 4)]
    result = texts_embed(texts, model=SMALL, width=8, dimensions=8, owner_key=OWNER)
    sent = embedding_requests(standin)
    assert [record["body"]["inputs"] for record in sent] == [MAX_INPUTS, MAX_INPUTS, 4]
    assert {record["body"]["dimensions"] for record in sent} == {8}
    assert (result.requests, len(result.vectors)) == (3, len(texts))
    alone = texts_embed([texts[-1], texts[0]], model=SMALL, width=8, dimensions=8, owner_key=OWNER)
    assert (result.vectors[-1], result.vectors[0]) == (alone.vectors[0], alone.vectors[1])
    assert result.prompt_tokens == sum(record["body"]["tokens"] for record in sent)


def test_texts_are_batched_by_estimated_tokens_within_the_apis_limit(standin):
    texts = [f"{index} " + "word " * 6_000 for index in range(40)]  # about 7,500 tokens each
    result = texts_embed(texts, model=SMALL, width=8, dimensions=8, owner_key=OWNER)
    sent = embedding_requests(standin)
    assert [record["body"]["inputs"] for record in sent] == [26, 14]
    assert all(record["body"]["tokens"] <= TOKENS_PER_BATCH for record in sent)
    assert [record["outcome"] for record in sent] == ["completed", "completed"]
    assert len(result.vectors) == 40


def test_each_request_is_billed_in_the_ledger_and_counts_in_the_users_budget(standin):
    user = get_user_model().objects.create_user("reader", password="pw-for-tests-only")
    budget_set(user_id=user.pk, unit="tokens", amount=Decimal(1000), period="day")
    texts = [f"{index} " + "word " * 6_000 for index in range(30)]
    with time_machine.travel(datetime(2026, 3, 10, 12, 0, tzinfo=UTC)):  # not across a midnight
        result = texts_embed(texts, model=SMALL, width=16, dimensions=16, owner_key=f"u:{user.pk}")
        allowance = user_allowance(user_id=user.pk)
    entries = list(UsageEntry.objects.order_by("pk"))
    assert [(entry.kind, entry.model, entry.user_id, entry.cost) for entry in entries] == [
        ("embedding", SMALL, user.pk, None),
        ("embedding", SMALL, user.pk, None),
    ]
    sent = embedding_requests(standin)
    assert [entry.prompt_tokens for entry in entries] == [record["body"]["tokens"] for record in sent]
    assert [entry.total_tokens for entry in entries] == [entry.prompt_tokens for entry in entries]
    assert result.prompt_tokens == sum(entry.prompt_tokens for entry in entries)
    assert allowance.tightest.spent == result.prompt_tokens
    assert allowance.spent_up


def test_a_priced_model_is_billed_at_its_catalog_input_price(standin):
    ChatModel.objects.create(name=SMALL, label="Embeddings", listed=False, price_input=Decimal("0.02"))
    result = texts_embed(["a short text"] * 3, model=SMALL, width=1536, owner_key=OWNER)
    entry = UsageEntry.objects.get()
    assert entry.prompt_tokens == result.prompt_tokens == 9
    assert entry.cost == Decimal("0.02") * 9 / 1_000_000


def test_a_429_and_a_500_are_retried(standin):
    standin.embeddings_script({"status": 429}, {"status": 500})
    result = texts_embed(["retried text"], model=SMALL, width=1536, owner_key=OWNER)
    assert len(result.vectors) == 1
    assert [record["outcome"] for record in embedding_requests(standin)] == [
        "error_status",
        "error_status",
        "completed",
    ]
    assert UsageEntry.objects.count() == 1  # the refused attempts cost nothing


def test_a_service_failing_past_the_retries_raises_and_bills_nothing(standin):
    standin.embeddings_script(*[{"status": 503}] * 4)
    with pytest.raises(UpstreamError) as failed:
        texts_embed(["never embedded"], model=SMALL, width=1536, owner_key=OWNER)
    assert (failed.value.status, failed.value.retryable) == (503, True)
    assert len(embedding_requests(standin)) == 4
    assert not UsageEntry.objects.exists()


def test_vectors_of_another_width_are_refused_never_cut(standin):
    with pytest.raises(EmbeddingWidthMismatch, match="width 3072, not the 1536 expected"):
        texts_embed(["wide"], model="openai/text-embedding-3-large", width=1536, owner_key=OWNER)
    assert UsageEntry.objects.get().kind == "embedding"  # the request was made, and paid


def test_an_empty_text_one_over_an_inputs_limit_or_other_dimensions_are_refused_before_any_request(standin):
    with pytest.raises(ValueError, match=f"text {MAX_INPUTS + 1} is empty"):
        texts_embed(["fine"] * (MAX_INPUTS + 1) + [""], model=SMALL, width=8, dimensions=8, owner_key=OWNER)
    with pytest.raises(ValueError, match="over the 8192"):
        texts_embed(["x" * 40_000], model=SMALL, width=1536, owner_key=OWNER)
    with pytest.raises(ValueError, match="dimensions 64 ask for vectors other than the 1536 expected"):
        texts_embed(["fine"], model=SMALL, width=1536, dimensions=64, owner_key=OWNER)
    assert embedding_requests(standin) == []
