"""The usage page's summaries of the filtered rows (per day, model and user) and their chart columns."""

from __future__ import annotations

from decimal import Decimal

from ..models import USAGE_SUMS, DailyUsageQuerySet

# Per model and per user, the charts and tables show this many, the costliest first.
USAGE_TOP_ROWS = 20
ANONYMOUS = "anonymous"


def usage_summaries(rows: DailyUsageQuerySet) -> dict[str, list[dict]]:
    """`days` (oldest first), `models` and `users` (the costliest USAGE_TOP_ROWS, every anonymous session
    together as "anonymous"): rows of USAGE_SUMS, each with its `label`. Three grouped queries in all."""
    grouped = {
        "days": (rows.per_day(), "day"),
        "models": (rows.per_model()[:USAGE_TOP_ROWS], "model"),
        "users": (rows.per_user()[:USAGE_TOP_ROWS], "user__username"),
    }
    return {
        name: [{**row, "label": str(row[field] or ANONYMOUS)} for row in query]
        for name, (query, field) in grouped.items()
    }


def usage_chart_columns(summaries: dict[str, list[dict]]) -> dict[str, dict[str, list]]:
    """The summaries as the charts take them: per summary, `labels` and one aligned list per measure;
    cost a float, or None where nothing was priced (drawn as no bar, not as a zero)."""
    return {
        name: {
            "labels": [row["label"] for row in rows],
            **{measure: [_json_number(row[measure]) for row in rows] for measure in USAGE_SUMS},
        }
        for name, rows in summaries.items()
    }


def _json_number(value: int | Decimal | None) -> int | float | None:
    return float(value) if isinstance(value, Decimal) else value
