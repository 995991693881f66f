"""The suite's fixtures and hooks: the stand-in over real HTTP, chat sockets on the real ASGI application,
real server processes, and each test's own storage. The helpers they use live in modules of their own
(chat_sockets, standin_control, seed_models, instances, processes)."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import dj_database_url
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections

from conversations.relay import instance

from .chat_sockets import socket_open
from .instances import InstancePairs, instance_pair_start
from .pgvector_server import data_dir_made, pgvector_server_start, pgvector_server_stop
from .processes import ROOT, DaphneServer, RedisServer, servers_stop, standin_start
from .seed_models import chat_models_seed
from .standin_control import StandIn
from .table_flush import flushes_by_delete

LOGS = ROOT / "test-artifacts" / "servers"


@pytest.fixture(scope="session", autouse=True)
def database_connections_closed_at_exit(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Before the test database is dropped, end the connections left by threads of closed event loops.

    Each test runs on its own event loop, whose worker threads end with it; connections they opened
    under the test harness outlive them and would keep the test database from being dropped.
    """
    yield
    asyncio.run(sync_to_async(connections.close_all)())
    with django_db_blocker.unblock(), connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    connections.close_all()


@pytest.fixture(scope="session", autouse=True)
def tables_flushed_by_delete() -> Iterator[None]:
    with flushes_by_delete():
        yield


@pytest.fixture(scope="session")
def pgvector_database_url() -> Iterator[str]:
    """The URL of a PostgreSQL 18 server with pgvector, started for the session (tests/pgvector_server.py)."""
    with data_dir_made() as data_dir:
        url = pgvector_server_start(data_dir)
        try:
            yield url
        finally:
            pgvector_server_stop(data_dir)


@pytest.fixture
def pgvector_connection(pgvector_database_url: str, django_db_blocker: Any) -> Iterator[Any]:
    """Django's connection to the pgvector server, as the alias `pgvector` (the test's alone: the suite's
    `default` stays on DATABASE_URL), with the extension created."""
    alias = "pgvector"
    both = {
        "default": dict(connections.settings["default"]),
        alias: dj_database_url.parse(pgvector_database_url),
    }
    connections.settings[alias] = connections.configure_settings(both)[alias]
    try:
        with django_db_blocker.unblock():
            connection = connections[alias]
            with connection.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
            yield connection
            connection.close()
    finally:
        del connections[alias]
        del connections.settings[alias]


@pytest.fixture(scope="session")
def standin_server() -> Iterator[StandIn]:
    LOGS.mkdir(parents=True, exist_ok=True)
    proc, url = standin_start("--tokens", "12", "--delay-ms", "2", log=LOGS / "standin.log")
    # The SDK client is built per event loop from settings, so this reaches every test's client.
    settings.DEDALUS_BASE_URL = settings.DEDALUS_AS_URL = url
    try:
        yield StandIn(url)
    finally:
        proc.stop()


@pytest.fixture
def standin(standin_server: StandIn) -> StandIn:
    """The stand-in, with an empty script queue and request log."""
    standin_server.reset()
    return standin_server


@pytest.fixture(autouse=True)
def chat_models_seeded(request: pytest.FixtureRequest) -> None:
    """Transactional tests truncate every table, so put back the models the data migration seeds."""
    db_fixtures = {"db", "transactional_db", "django_db_reset_sequences", "live_server"}
    if not request.node.get_closest_marker("django_db") and not db_fixtures & set(request.fixturenames):
        return
    request.getfixturevalue("_django_db_helper")
    chat_models_seed()


@pytest.fixture
def staff_client(client: Any, django_user_model: Any) -> Any:
    """A Django test client signed in as a superuser."""
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-for-tests-only")
    client.force_login(admin)
    return client


@pytest.fixture
async def replies_settle() -> AsyncIterator[None]:
    """After the test, let reply tasks it started end on its own event loop, then close the instance."""
    yield
    try:
        async with asyncio.timeout(30):
            await (await instance.instance_get()).replies_drain_for_testing()
            await instance.instance_close_for_testing()
    except TimeoutError:
        for task in asyncio.all_tasks():
            task.print_stack(file=sys.stderr)  # a task that never ends: show where it waits
        raise


@pytest.fixture
async def chat_socket(standin: StandIn, replies_settle: None) -> AsyncIterator[WebsocketCommunicator]:
    """A socket on `/ws/chat/t1/`, past its history frame."""
    communicator = await socket_open("/ws/chat/t1/")
    yield communicator
    await communicator.disconnect()


@pytest.fixture
def log_dir(request: pytest.FixtureRequest) -> Path:
    """The test's own directory of server logs, emptied first (a server appends to its log)."""
    path = LOGS / request.node.name.replace("/", "_")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def private_redis(log_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(log_dir).start()
    yield server
    server.stop()


@pytest.fixture
def event_bus() -> str:
    """The CHAT_EVENT_BUS of the instances a test starts (a test may parametrize it)."""
    return "redis"


@pytest.fixture
def instances_started(
    log_dir: Path, standin: StandIn, private_redis: RedisServer, event_bus: str
) -> Iterator[Callable[..., list[DaphneServer]]]:
    """Start instances A and B on the test database and a Redis of their own; stop them afterwards."""
    started: list[DaphneServer] = []

    def start(**overrides: str) -> list[DaphneServer]:
        pair = instance_pair_start(standin, private_redis, log_dir, event_bus, **overrides)
        started.extend(pair)
        return pair

    yield start
    servers_stop(started)


@pytest.fixture
def instances(instances_started: Callable[..., list[DaphneServer]]) -> list[DaphneServer]:
    """A and B of the test's own, for a test that stops or signals them or their Redis."""
    return instances_started()


@pytest.fixture(scope="session")
def instance_pairs() -> Iterator[InstancePairs]:
    """The shared pairs, their logs in a directory of this run's own (a server appends to its log)."""
    path = LOGS / "shared-instances"
    shutil.rmtree(path, ignore_errors=True)
    pairs = InstancePairs(path)
    yield pairs
    pairs.stop()


@pytest.fixture(autouse=True)
def instance_pairs_stopped_unless_used(request: pytest.FixtureRequest, instance_pairs: InstancePairs) -> None:
    """The shared pairs run only through consecutive tests that use them. Idle beside any other test,
    their heartbeats would store its replies whose lease lapsed as lost, from their own empty reply
    logs, before the instance under test could."""
    if "shared_instances" not in request.fixturenames:
        instance_pairs.stop()


@pytest.fixture
def shared_instances(instance_pairs: InstancePairs, standin: StandIn, event_bus: str) -> list[DaphneServer]:
    """A and B as an earlier test left them (started if none runs), for a test that leaves them and their
    Redis running and configured as they are. The test's rows go with its database's truncation; what it
    leaves in their Redis is under conversations and owners no later test has."""
    return instance_pairs.pair(standin, event_bus)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(autouse=True)
def attachments_stored_apart(settings: Any, tmp_path: Path) -> Path:
    """Each test's attachment files in a folder of its own (the local filesystem storage)."""
    root = tmp_path / "attachments"
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "base_url": None},
        },
    }
    return root
