"""The chaos suite: two Daphne instances on Postgres and a Redis of their own, a short lease, and rounds
of slow replies, each with a writer tab on instance A and a follower tab on instance B, and one fault per
round: Redis restarted, every Postgres backend of the instances terminated (mid-stream and again as the
replies end), the owner frozen past its lease, the owner killed, and text the database refuses.

After each round, for every reply and every socket: nothing is left streaming; no socket was ever shown
text the stored reply does not hold (shown means durable: what a tab held at any moment is a prefix of
the stored text, whatever history frames corrected later); each socket that stayed open holds exactly
the stored text and got exactly one terminal frame; no chunk contradicted or skipped
past text already received; no socket was closed by the server in the Redis and Postgres rounds; the
next message in every conversation streams to its end; every user message is stored. The suite prints
a table of rounds and violations (and writes it to test-artifacts/chaos.txt).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg
import pytest
from django.conf import settings

from conversations.models import Message

from .instances import instance_env
from .processes import ROOT, DaphneServer, RedisServer
from .servers import page_session_headers
from .standin_control import StandIn

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

LEASE_SECONDS = 2.0
CONVERSATIONS_PER_ROUND = 3
INSTANCE_APP_NAME = "chat-chaos-instance"  # lets a round terminate the instances' backends, not the test's
SLOW_REPLY = "[[standin tokens=50 delay_ms=50]]"
# Tokens faster than the reply log's writes: whenever the owner freezes, some text is on its way to the log.
FAST_REPLY = "[[standin tokens=400 delay_ms=5]]"
ARTIFACTS = ROOT / "test-artifacts"


@dataclass
class Tab:
    """A WebSocket client holding what a page would show: each reply's text, its terminal frames, and
    every way the server's frames broke the protocol's promises."""

    name: str
    ws: aiohttp.ClientWebSocketResponse
    texts: dict[int, str] = field(default_factory=dict)
    longest: dict[int, str] = field(default_factory=dict)  # the most text each reply ever showed here
    ends: Counter[int] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    close_code: int | None = None
    reader: asyncio.Task[None] | None = None

    def frame_take(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "history":
            for message in frame["messages"]:
                if message["role"] == "assistant":
                    self.texts[message["id"]] = message["content"]
            streaming = frame.get("streaming")
            if streaming:
                self.texts[streaming["message_id"]] = streaming["content"]
        elif kind == "start":
            self.texts.setdefault(frame["message_id"], "")
        elif kind == "chunk":
            self._chunk_take(frame["message_id"], frame["offset"], frame["content"])
        elif kind in ("done", "error") and "message_id" in frame:
            self.ends[frame["message_id"]] += 1
        for reply_id, text in self.texts.items():
            if len(text) > len(self.longest.get(reply_id, "")):
                self.longest[reply_id] = text

    def _chunk_take(self, reply_id: int, offset: int, content: str) -> None:
        text = self.texts.get(reply_id, "")
        if offset > len(text):
            self.violations.append(f"gap in reply {reply_id}: chunk at {offset}, text ends at {len(text)}")
            return
        overlap = text[offset : offset + len(content)]
        if content[: len(overlap)] != overlap:
            self.violations.append(f"chunk contradicts reply {reply_id} at {offset}")
        self.texts[reply_id] = text[:offset] + content if len(text) < offset + len(content) else text

    async def read(self) -> None:
        while True:
            message = await self.ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                self.frame_take(orjson.loads(message.data))
            else:
                self.close_code = self.ws.close_code if self.ws.close_code is not None else -1
                return

    @property
    def open(self) -> bool:
        return self.close_code is None

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(frame).decode())


async def tab_open(http: aiohttp.ClientSession, server: DaphneServer, session_id: str, name: str) -> Tab:
    ws = await http.ws_connect(
        server.ws_url(session_id), headers=await page_session_headers(http, server.origin)
    )
    tab = Tab(name=name, ws=ws)
    first = orjson.loads((await ws.receive(timeout=15)).data)
    assert first["type"] == "history", first
    tab.frame_take(first)
    tab.reader = asyncio.create_task(tab.read())
    return tab


async def eventually(predicate: Callable[[], Awaitable[bool] | bool], wait: float) -> bool:
    """Poll until `predicate` holds or `wait` seconds pass; return whether it held."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        value = predicate()
        if not isinstance(value, bool):
            value = await value
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)


@dataclass
class Cluster:
    """The two instances, their Redis, and how to start a replacement for a killed one."""

    env: dict[str, str]
    log_dir: Path
    redis: RedisServer
    a: DaphneServer
    b: DaphneServer
    started: list[DaphneServer] = field(default_factory=list)

    def replace_a(self) -> None:
        self.a = DaphneServer(f"a{len(self.started)}", self.env, self.log_dir).start()
        self.started.append(self.a)


@pytest.fixture
async def cluster(standin: StandIn) -> AsyncIterator[Cluster]:
    log_dir = ARTIFACTS / "servers" / "chaos"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    redis_server = RedisServer(log_dir).start()
    env = instance_env(
        standin,
        redis_server.url,
        CHAT_REPLY_LEASE_SECONDS=str(LEASE_SECONDS),
        CHAT_FLUSH_INTERVAL="0.2",
        # The reply log's writes lag the tokens (a busy Redis, a slow network): text an owner already
        # received is on its way to the log whenever it freezes or dies.
        CHAT_REPLY_LOG_BATCH_MS="100",
        CHAT_SHUTDOWN_GRACE_SECONDS="2",
        PGAPPNAME=INSTANCE_APP_NAME,
    )
    a = DaphneServer("a", env, log_dir).start()
    b = DaphneServer("b", env, log_dir).start()
    cluster = Cluster(env=env, log_dir=log_dir, redis=redis_server, a=a, b=b, started=[a, b])
    yield cluster
    for server in cluster.started:
        server.stop()
    redis_server.stop()


def instance_backends_terminate() -> int:
    """End every Postgres backend the instances hold (as a database restart or a failover would)."""
    dsn = settings.DATABASES["default"]
    with psycopg.connect(
        host=dsn["HOST"], port=dsn["PORT"] or 5432, user=dsn["USER"], dbname="postgres", autocommit=True
    ) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [INSTANCE_APP_NAME],
        ).fetchall()
    return len(rows)


@dataclass
class Round:
    name: str
    message: str
    fault: Callable[[Cluster], Awaitable[str]]  # returns what it did, for the table
    sockets_must_survive: bool = False


async def fault_none(cluster: Cluster) -> str:
    return "no fault"


async def fault_redis_restart(cluster: Cluster) -> str:
    await asyncio.sleep(0.6)
    cluster.redis.stop()
    await asyncio.sleep(1.0)
    cluster.redis.start()
    return "down 1 s"


async def fault_postgres_terminate(cluster: Cluster) -> str:
    await asyncio.sleep(0.6)
    mid_stream = await asyncio.to_thread(instance_backends_terminate)
    await asyncio.sleep(1.8)  # the replies end about now: 50 tokens, 50 ms apart
    at_end = await asyncio.to_thread(instance_backends_terminate)
    return f"{mid_stream} + {at_end} backends"


async def fault_owner_frozen(cluster: Cluster) -> str:
    await asyncio.sleep(0.6)
    cluster.a.signal(signal.SIGSTOP)
    await asyncio.sleep(2 * LEASE_SECONDS)
    cluster.a.signal(signal.SIGCONT)
    return f"{2 * LEASE_SECONDS:g} s"


async def fault_owner_killed(cluster: Cluster) -> str:
    await asyncio.sleep(0.6)
    cluster.a.signal(signal.SIGKILL)
    cluster.a.wait(10)
    return "mid-stream"


ROUNDS = [
    Round("text the database refuses (NUL)", "[[standin reply=a%00b%20c%00d%20e tool=lo%00ok]]", fault_none),
    Round("Redis restarted mid-stream", SLOW_REPLY, fault_redis_restart, sockets_must_survive=True),
    Round("Postgres backends terminated", SLOW_REPLY, fault_postgres_terminate, sockets_must_survive=True),
    Round("owner frozen (SIGSTOP) for twice the lease", FAST_REPLY, fault_owner_frozen),
    Round("owner killed (SIGKILL)", SLOW_REPLY, fault_owner_killed),
]


async def round_run(
    cluster: Cluster, http: aiohttp.ClientSession, number: int, spec: Round
) -> tuple[str, Counter[str], list[str]]:
    """Run one round; return what its fault did, its violations by kind, and their details."""
    violations: Counter[str] = Counter()
    details: list[str] = []

    def violation(kind: str, detail: str) -> None:
        violations[kind] += 1
        details.append(f"{spec.name}: {kind}: {detail}")

    session_ids = [f"chaos{number}c{n}" for n in range(CONVERSATIONS_PER_ROUND)]
    writers = [await tab_open(http, cluster.a, sid, f"A/{sid}") for sid in session_ids]
    followers = [await tab_open(http, cluster.b, sid, f"B/{sid}") for sid in session_ids]
    tabs = writers + followers
    for writer in writers:
        await writer.send({"message": f"round {number} {spec.message}"})
    did = await spec.fault(cluster)

    # Every reply of the round ends in the store (a lost one once its lease lapses).
    async def every_reply_ended() -> bool:
        replies = Message.objects.filter(
            conversation__session_id__in=session_ids, role=Message.Role.ASSISTANT
        )
        ended = replies.exclude(status=Message.Status.STREAMING)
        return await ended.acount() == await replies.acount() == len(session_ids)

    if not await eventually(every_reply_ended, wait=6 * LEASE_SECONDS + 15):
        violation("left streaming", "a reply is missing or still streaming after its lease lapsed")
    replies = [
        m
        async for m in Message.objects.filter(
            conversation__session_id__in=session_ids, role=Message.Role.ASSISTANT
        ).select_related("conversation")
    ]
    if len(replies) != len(session_ids):
        violation("reply missing", f"{len(replies)} replies stored for {len(session_ids)} messages")
    # The sockets that stayed open get every reply's end.
    await eventually(
        lambda: all(
            not tab.open or all(tab.ends[r.pk] for r in replies if r.conversation.session_id in tab.name)
            for tab in tabs
        ),
        wait=10,
    )
    await asyncio.sleep(0.3)  # anything sent after the end would arrive by now
    for tab in tabs:
        for text in tab.violations:
            violation("protocol", f"{tab.name}: {text}")
        for reply in replies:
            shown = tab.longest.get(reply.pk, "")
            if tab.name.endswith(reply.conversation.session_id) and not reply.content.startswith(shown):
                violation(
                    "shown text not stored",
                    f"{tab.name}: {len(shown)} shown at most, {len(reply.content)} stored",
                )
        if not tab.open:
            if spec.sockets_must_survive:
                violation("socket closed", f"{tab.name} closed with {tab.close_code}")
            continue
        for reply in replies:
            if not tab.name.endswith(reply.conversation.session_id):
                continue
            if tab.ends[reply.pk] != 1:
                violation("terminal frames", f"{tab.name}: {tab.ends[reply.pk]} for reply {reply.pk}")
            if tab.texts.get(reply.pk) != reply.content:
                violation(
                    "text differs from the store",
                    f"{tab.name}: {len(tab.texts.get(reply.pk, ''))} shown, {len(reply.content)} stored",
                )
    # The next message in every conversation streams to its end (from an instance that is alive).
    if cluster.a.proc is not None and cluster.a.proc.poll() is not None:
        cluster.replace_a()
    for sid in session_ids:
        tab = await tab_open(http, cluster.a, sid, f"next/{sid}")
        await tab.send({"message": "and now? [[standin tokens=5]]"})
        if not await eventually(lambda tab=tab: len(tab.ends) == 1 or not tab.open, wait=15):
            violation("next message", f"{sid}: no end")
        elif not await Message.objects.filter(
            conversation__session_id=sid,
            role=Message.Role.ASSISTANT,
            status=Message.Status.COMPLETE,
            content__contains="and now?",
        ).aexists():
            violation("next message", f"{sid}: not stored complete")
        await tab.ws.close()
    users = await Message.objects.filter(
        conversation__session_id__in=session_ids, role=Message.Role.USER
    ).acount()
    if users != 2 * len(session_ids):
        violation("user message lost", f"{users} stored of {2 * len(session_ids)}")
    for tab in tabs:
        await tab.ws.close()
        if tab.reader is not None:
            await asyncio.gather(tab.reader, return_exceptions=True)
    return did, violations, details


async def test_the_chaos_rounds_keep_every_promise(cluster, capsys):
    rows, details = [], []
    async with aiohttp.ClientSession() as http:
        for number, spec in enumerate(ROUNDS, 1):
            did, violations, found = await round_run(cluster, http, number, spec)
            rows.append((number, spec.name, did, CONVERSATIONS_PER_ROUND, violations))
            details.extend(found)
    lines = [f"{'round':<6}{'fault':<46}{'done':<16}{'convs':<7}violations"]
    for number, name, did, conversations, violations in rows:
        kinds = ", ".join(f"{kind}: {count}" for kind, count in sorted(violations.items())) or "0"
        lines.append(f"{number:<6}{name:<46}{did:<16}{conversations:<7}{kinds}")
    table = "\n".join(lines + [""] + details)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "chaos.txt").write_text(table + "\n")
    with capsys.disabled():
        print("\n" + table)
    assert not details, table
