"""The model catalog: what the Dedalus API lists (`GET /v1/models`) kept on ChatModel rows.

`manage.py models_sync` and the admin's action read it (`upstream.models_list`) and store each
model's capabilities, token limits and prices. A model the API newly lists is added disabled (an
operator enables it); one it no longer lists is marked unlisted, and stays as the operator left it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import upstream
from ..models import ChatModel
from ..upstream import CatalogUnavailable

# CatalogUnavailable is what catalog_fetch raises: its callers catch it from here.
__all__ = ["CatalogSync", "CatalogUnavailable", "catalog_fetch", "catalog_sync"]


@dataclass(frozen=True, slots=True)
class CatalogSync:
    """What a sync changed: models added (disabled), models updated, models no longer listed."""

    added: list[str]
    updated: list[str]
    unlisted: list[str]


def catalog_fetch() -> list[dict[str, Any]]:
    """The API's models as JSON objects (with the fields the SDK's types do not name, e.g. pricing).

    Raise CatalogUnavailable when DEDALUS_API_KEY is unset or the API cannot be read."""
    return upstream.models_list()


@transaction.atomic
def catalog_sync(entries: list[dict[str, Any]]) -> CatalogSync:
    """Store the catalog's capabilities, limits and prices on ChatModel rows by model id."""
    now = timezone.now()
    listed: dict[str, dict[str, Any]] = {
        entry["id"]: entry for entry in entries if isinstance(entry.get("id"), str) and entry["id"]
    }
    added, updated = [], []
    for name, entry in listed.items():
        fields = _catalog_fields(entry)
        row = ChatModel.objects.filter(name=name).first()
        if row is None:
            label = str(entry.get("display_name") or name)[:100]
            ChatModel.objects.create(
                name=name, label=label, enabled=False, synced_at=now, listed=True, **fields
            )
            added.append(name)
        else:
            ChatModel.objects.filter(pk=row.pk).update(synced_at=now, listed=True, **fields)
            updated.append(name)
    unlisted = list(ChatModel.objects.exclude(name__in=list(listed)).values_list("name", flat=True))
    ChatModel.objects.filter(name__in=unlisted).update(listed=False, synced_at=now)
    return CatalogSync(added=added, updated=updated, unlisted=unlisted)


def _catalog_fields(entry: dict[str, Any]) -> dict[str, Any]:
    capabilities = entry.get("capabilities") if isinstance(entry.get("capabilities"), dict) else {}
    pricing = entry.get("pricing") if isinstance(entry.get("pricing"), dict) else {}
    return {
        "capabilities": {key: value for key, value in capabilities.items() if isinstance(value, bool)},
        "input_token_limit": _whole(capabilities.get("input_token_limit")),
        "output_token_limit": _whole(capabilities.get("output_token_limit")),
        "price_input": _price(pricing.get("input")),
        "price_output": _price(pricing.get("output")),
        "price_cached": _price(pricing.get("cached_input", pricing.get("cached"))),
    }


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _price(value: Any) -> Decimal | None:
    try:
        price = Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None
    return price if price is not None and price.is_finite() and 0 <= price < 10**6 else None
