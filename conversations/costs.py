"""What a reply cost: its token counts at its model's catalog prices (USD per million tokens).

Cached prompt tokens are priced at the cached rate when the catalog gives one, else as input. The cost is
stored when the reply ends, so a later price change rewrites no past reply. A reply that handed off
between models is priced at its first model's rates: the API reports one usage for the whole reply.
"""

from __future__ import annotations

from decimal import Decimal

from django.db.models import DecimalField, ExpressionWrapper, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from .models import ChatModel

PER_MILLION = Decimal(1_000_000)
COST_FIELD = DecimalField(max_digits=16, decimal_places=8)


def reply_cost(usage: dict[str, int]) -> Subquery | None:
    """The cost of a reply with this usage, as a subquery on the catalog row of the reply's `model` (for
    the UPDATE that stores its end: no extra round trip); None without usage. It is NULL when the model
    has no prices."""
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    cached = min(int(usage.get("cached_tokens") or 0), prompt)
    completion = int(usage.get("completion_tokens") or 0)
    priced = ExpressionWrapper(
        (
            Value(prompt - cached) * F("price_input")
            + Value(cached) * Coalesce(F("price_cached"), F("price_input"))
            + Value(completion) * F("price_output")
        )
        / Value(PER_MILLION),
        output_field=COST_FIELD,
    )
    rows = ChatModel.objects.filter(name=OuterRef("model")).annotate(cost=priced).values("cost")[:1]
    return Subquery(rows, output_field=COST_FIELD)
