"""Django's PostgreSQL backend, with a connection pool that checks a connection before lending it only
when it sat idle long enough to have been dropped.

A pooled connection the database closed meanwhile (a restart, a failover, a terminated backend) would
fail the next request that takes it: a handshake's session read would answer 500, a turn's write could
not be retried. Django's CONN_HEALTH_CHECKS pings every connection it takes from the pool, one round trip
per database call; under load a connection comes back within milliseconds, so only one idle for
POOL_CHECK_IDLE_SECONDS or more is pinged.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

# A connection back in the pool for less than this is lent without a ping.
POOL_CHECK_IDLE_SECONDS = 1.0


def _returned(connection: Any) -> None:
    """The pool's `reset` hook: note when the connection came back."""
    connection.returned_at = time.monotonic()


def _check_if_idle(connection: Any) -> None:
    """The pool's `check` hook: ping a connection that sat idle long enough to have been dropped."""
    if time.monotonic() - getattr(connection, "returned_at", 0.0) >= POOL_CHECK_IDLE_SECONDS:
        ConnectionPool.check_connection(connection)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> ConnectionPool | None:
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == base.NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # as Django's: it sets the mode itself later
            pool = ConnectionPool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                check=_check_if_idle,
                reset=_returned,
                **({} if pool_options is True else pool_options),
            )
            # As Django's: several threads may build one at start-up; the first one kept wins.
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]
