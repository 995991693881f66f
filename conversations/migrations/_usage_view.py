"""The daily-usage view (0005) around operations that change the tables it reads.

SQLite adds most columns by rebuilding the table (a new one, the rows copied, the old dropped and the new
renamed), and refuses to while a view reads the table: the view is dropped first and made again after.
Not a migration itself (the loader skips names starting with `_`).

From 0025 on, the view reads the usage ledger only (0025's LEDGER_VIEW): a migration that changes messages
or conversations needs none of this, and must not make 0016's view again.
"""

from importlib import import_module

from django.db import migrations

DAILY_USAGE_VIEW = import_module("conversations.migrations.0005_usage_and_quotas").DAILY_USAGE_VIEW
DROP = "DROP VIEW conversations_dailyusage"


def around_usage_view(
    *operations: migrations.operations.base.Operation, before: str = DAILY_USAGE_VIEW, after: str | None = None
) -> list:
    """`operations` between dropping the view (as `before` made it) and making it again as `after`
    (the same by default), both ways. A migration after 0016 passes 0016's view as both."""
    after = after or before
    return [migrations.RunSQL(DROP, before), *operations, migrations.RunSQL(after, DROP)]
