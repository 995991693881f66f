"""An instance's Postgres connections stay within its budget (CHAT_DB_POOL_MAX) under a burst of requests
and sockets, and go back to the pool afterwards instead of lingering as idle backends.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import psycopg
import pytest
from django.conf import settings

from .processes import DaphneServer, server_env
from .servers import ChatClient
from .standin_control import StandIn

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

BUDGET = 5
APPLICATION_NAME = "chat-pool-test"  # libpq reads PGAPPNAME, so the instance's backends carry it


def conninfo() -> str:
    database = settings.DATABASES["default"]
    return psycopg.conninfo.make_conninfo(
        host=database["HOST"] or "",
        port=database["PORT"] or "",
        user=database["USER"] or "",
        password=database["PASSWORD"] or "",
        dbname=database["NAME"],
    )


async def instance_backends(watcher: psycopg.AsyncConnection) -> int:
    """The number of Postgres backends the instance under test holds open right now."""
    cursor = await watcher.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
        [APPLICATION_NAME],
    )
    (count,) = await cursor.fetchone()
    return count


async def burst(server: DaphneServer, http: aiohttp.ClientSession) -> list[int]:
    """40 page loads, 40 list calls with a session and 5 chat sockets at once; return the HTTP statuses."""
    pages = [http.get(f"http://127.0.0.1:{server.port}/c/burst-{n}/") for n in range(40)]
    lists = [http.get(f"http://127.0.0.1:{server.port}/api/conversations/") for _ in range(40)]

    async def status(request) -> int:
        async with request as response:
            await response.read()
            return response.status

    async def socket(n: int) -> None:
        tab = await ChatClient(http, server, f"burst-socket-{n}").connect()
        await tab.close()

    statuses = await asyncio.gather(*(status(request) for request in pages + lists))
    await asyncio.gather(*(socket(n) for n in range(5)))
    return list(statuses)


async def test_a_burst_never_holds_more_connections_than_the_budget_nor_leaves_them_idle(
    standin: StandIn, tmp_path: Path
):
    env = server_env(
        database_name=settings.DATABASES["default"]["NAME"],
        redis_url="",
        standin_url=standin.url,
        CHAT_DB_POOL_MAX=str(BUDGET),
        CHAT_DB_POOL_MIN="1",
        CHAT_DB_POOL_TIMEOUT="3",
        PGAPPNAME=APPLICATION_NAME,
    )
    server = DaphneServer("pool", env, tmp_path).start()
    peak = 0
    try:
        async with await psycopg.AsyncConnection.connect(conninfo(), autocommit=True) as watcher:
            done = asyncio.Event()

            async def watch() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, await instance_backends(watcher))
                    await asyncio.sleep(0.01)

            watching = asyncio.create_task(watch())
            # One browser: its first page gives it the session the list calls need (an IP host's cookie
            # is kept only by an unsafe jar).
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                async with http.get(f"http://127.0.0.1:{server.port}/c/warmup/") as response:
                    response.raise_for_status()
                statuses = await burst(server, http)
                await asyncio.sleep(0.5)  # a lingering connection would still be open now
                after = await instance_backends(watcher)
                # A connection a worker kept instead of returning would be a slot lost for good: after two
                # bursts nothing would be left, and requests would fail after CHAT_DB_POOL_TIMEOUT.
                statuses += await burst(server, http)
                done.set()
                await watching
    finally:
        server.stop()
    assert statuses == [200] * 160
    assert 0 < peak <= BUDGET, peak
    assert after <= BUDGET, after


async def test_connections_the_database_dropped_while_pooled_are_not_lent(standin: StandIn, tmp_path: Path):
    env = server_env(
        database_name=settings.DATABASES["default"]["NAME"],
        redis_url="",
        standin_url=standin.url,
        CHAT_DB_POOL_MAX="4",
        CHAT_DB_POOL_MIN="4",
        PGAPPNAME=APPLICATION_NAME,
    )
    server = DaphneServer("dropped", env, tmp_path).start()
    pages = [f"http://127.0.0.1:{server.port}/c/dropped-{n}/" for n in range(8)]
    try:
        async with aiohttp.ClientSession() as http:

            async def statuses() -> list[int]:
                async def one(url: str) -> int:
                    async with http.get(url) as response:
                        return response.status

                return list(await asyncio.gather(*(one(url) for url in pages)))

            assert await statuses() == [200] * 8  # every pooled connection has been used
            async with await psycopg.AsyncConnection.connect(conninfo(), autocommit=True) as admin:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                    [APPLICATION_NAME],
                )  # as a database restart or a failover would
            await asyncio.sleep(1.2)  # the pool's connections sit idle meanwhile
            assert await statuses() == [200] * 8
    finally:
        server.stop()


async def test_a_socket_handshake_right_after_the_database_dropped_its_connection_still_opens(
    standin: StandIn, tmp_path: Path
):
    """A connection lent again within a second of its last use is not pinged (a round trip per call
    otherwise): a handshake's session read on one the database just dropped must not answer 500."""
    env = server_env(
        database_name=settings.DATABASES["default"]["NAME"],
        redis_url="",
        standin_url=standin.url,
        CHAT_DB_POOL_MAX="1",  # one connection: the next handshake gets the one just dropped
        CHAT_DB_POOL_MIN="1",
        PGAPPNAME=APPLICATION_NAME,
    )
    server = DaphneServer("handshake-drop", env, tmp_path).start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            await psycopg.AsyncConnection.connect(conninfo(), autocommit=True) as admin,
        ):
            for round_number in range(3):
                tab = await ChatClient(http, server, f"handshake-{round_number}").connect()
                await tab.close()
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                    [APPLICATION_NAME],
                )  # as a database restart or a failover would, right after the connection's last use
                tab = await ChatClient(http, server, f"handshake-{round_number}").connect()  # no 500
                await tab.close()
    finally:
        server.stop()
