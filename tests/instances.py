"""Instances of the app started as child processes (tests/processes.py) on this test run's database and
stand-in."""

from __future__ import annotations

from django.conf import settings

from .processes import server_env
from .standin_control import StandIn


def instance_env(standin: StandIn, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of an instance of the app on the test database and the stand-in."""
    database_name = settings.DATABASES["default"]["NAME"]
    return server_env(database_name=database_name, redis_url=redis_url, standin_url=standin.url, **extra)
