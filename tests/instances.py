"""Instances of the app started as child processes (tests/processes.py) on this test run's database and
stand-in."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from .processes import DaphneServer, RedisServer, server_env, servers_start, servers_stop
from .standin_control import StandIn

# What the pairs of instances run with unless a test says otherwise: quick leases and flushes, and a grace
# period that lets a reply in flight finish.
PAIR_SETTINGS = {
    "CHAT_REPLY_LEASE_SECONDS": "1.5",
    "CHAT_FLUSH_INTERVAL": "0.2",
    "CHAT_SHUTDOWN_GRACE_SECONDS": "15",
}


def instance_env(standin: StandIn, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of an instance of the app on the test database and the stand-in."""
    database_name = settings.DATABASES["default"]["NAME"]
    return server_env(database_name=database_name, redis_url=redis_url, standin_url=standin.url, **extra)


def instance_pair_start(
    standin: StandIn, redis: RedisServer, log_dir: Path, event_bus: str, **overrides: str
) -> list[DaphneServer]:
    """Instances A and B on the test database and `redis`, started at once."""
    env = instance_env(standin, redis.url, **{**PAIR_SETTINGS, "CHAT_EVENT_BUS": event_bus, **overrides})
    pair = [DaphneServer("a", env, log_dir), DaphneServer("b", env, log_dir)]
    servers_start(pair)
    return pair


class InstancePairs:
    """Pairs A and B that outlive a test, one per CHAT_EVENT_BUS, each on a Redis of its own: for
    consecutive tests that neither stop, signal nor reconfigure an instance or its Redis. A pair whose
    process has exited is started again."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, tuple[RedisServer, list[DaphneServer]]] = {}

    def pair(self, standin: StandIn, event_bus: str) -> list[DaphneServer]:
        if event_bus in self.running:
            redis, pair = self.running[event_bus]
            if all(server.proc is not None and server.proc.poll() is None for server in [redis, *pair]):
                return pair
            servers_stop([*pair, redis])
        log_dir = self.log_dir / event_bus
        log_dir.mkdir(parents=True, exist_ok=True)
        redis = RedisServer(log_dir).start()
        try:
            pair = instance_pair_start(standin, redis, log_dir, event_bus)
        except BaseException:
            redis.stop()
            raise
        self.running[event_bus] = (redis, pair)
        return pair

    def stop(self) -> None:
        for redis, pair in self.running.values():
            servers_stop([*pair, redis])
        self.running.clear()
