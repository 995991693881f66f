"""The daily-usage view (0005) around operations that change the tables it reads.

SQLite adds most columns by rebuilding the table (a new one, the rows copied, the old dropped and the new
renamed), and refuses to while a view reads the table: the view is dropped first and made again after.
Not a migration itself (the loader skips names starting with `_`).
"""

from importlib import import_module

from django.db import migrations

DAILY_USAGE_VIEW = import_module("conversations.migrations.0005_usage_and_quotas").DAILY_USAGE_VIEW
DROP = "DROP VIEW conversations_dailyusage"


def around_usage_view(*operations: migrations.operations.base.Operation) -> list:
    """`operations` between dropping the view and creating it again (both ways)."""
    return [migrations.RunSQL(DROP, DAILY_USAGE_VIEW), *operations, migrations.RunSQL(DAILY_USAGE_VIEW, DROP)]
