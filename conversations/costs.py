"""What a reply cost: its token counts at its model's catalog prices (USD per million tokens).

Cached prompt tokens are priced at the cached rate when the catalog gives one, else as input. The prices
are those of the model that answers first, as the turn read them with the enabled models (no query of
its own, no SQL to compile at the reply's end), and the cost is stored with the reply's end, so a later
price change rewrites no past reply. A reply that handed off is priced at its first model's prices: the
API reports one usage for the whole reply.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

PER_MILLION = Decimal(1_000_000)
CENT_FRACTION = Decimal("0.00000001")  # Message.cost's eight places


class Prices(NamedTuple):
    """A model's catalog prices, USD per million tokens (None: the catalog gives none)."""

    input: Decimal | None
    output: Decimal | None
    cached: Decimal | None = None


def reply_cost(usage: dict[str, int] | None, prices: Prices | None) -> Decimal | None:
    """The cost of a reply with this usage at these prices; None without usage or without prices."""
    if not usage or prices is None or prices.input is None or prices.output is None:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    cached = min(int(usage.get("cached_tokens") or 0), prompt)
    completion = int(usage.get("completion_tokens") or 0)
    cached_price = prices.input if prices.cached is None else prices.cached
    total = (prompt - cached) * prices.input + cached * cached_price + completion * prices.output
    return (total / PER_MILLION).quantize(CENT_FRACTION)
