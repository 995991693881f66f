"""The `api` scenario's clients: the same stamped turns as the page's sockets, sent as streamed
`POST /v1/chat/completions` requests with an API key, each client one API conversation (its later turns
resend the history with the `X-Conversation-Id` the first answer named), every token checked and timed as
a socket's are. A key for them is made in the bench's database with the project's own commands."""

from __future__ import annotations

import asyncio
import subprocess
import time

import aiohttp
import orjson

from tests.processes import HOST, HttpServer

from .load import MODEL, Load, LoadStats, ReplyTrack
from .servers import OUR_PYTHON, REPO, ours_env

USERNAME = "bench-api"
CONVERSATION_HEADER = "X-Conversation-Id"


def api_key_made(standin_url: str) -> str:
    """A new API key of the bench's user (made if missing) in ours' scratch database."""
    env = ours_env(standin_url)
    make_user = (
        "from django.contrib.auth import get_user_model;"
        f"get_user_model().objects.get_or_create(username={USERNAME!r})"
    )
    for argv in (["shell", "-c", make_user], ["apikey_create", USERNAME, "--name", "bench"]):
        done = subprocess.run(
            [str(OUR_PYTHON), "manage.py", *argv],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {argv[0]} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


async def run_api_load(server: HttpServer, load: Load, tag: str, key: str) -> tuple[LoadStats, float]:
    """Every client's turns at once, one API conversation each. Return the stats and wall seconds."""
    per_client = [LoadStats() for _ in range(load.clients)]
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(connector=conn, timeout=timeout, headers=headers) as session:
        started = time.monotonic()
        await asyncio.gather(*(_client_turns(session, server, load, stats) for stats in per_client))
        wall = time.monotonic() - started
    return LoadStats.merged(per_client), wall


async def _client_turns(session: aiohttp.ClientSession, server: HttpServer, load: Load, stats: LoadStats):
    url = f"http://{HOST}:{server.port}/v1/chat/completions"
    prompt = orjson.loads(load.message())["message"]
    messages: list[dict[str, str]] = []
    conversation = ""
    try:
        for _ in range(load.turns):
            messages.append({"role": "user", "content": prompt})
            body = {"model": MODEL, "messages": messages, "stream": True}
            track = ReplyTrack.new(load.tokens)
            failed = None
            sent_ns = time.time_ns()
            text: list[str] = []
            try:
                async with asyncio.timeout(load.turn_timeout):
                    sent_ns = time.time_ns()
                    extra = {CONVERSATION_HEADER: conversation} if conversation else {}
                    async with session.post(url, json=body, headers=extra) as response:
                        if response.status != 200:
                            failed = f"HTTP {response.status}: {(await response.text())[:80]}"
                        else:
                            conversation = response.headers.get(CONVERSATION_HEADER, conversation)
                            failed = await _events_read(response, track, stats, text, sent_ns)
            except TimeoutError:
                failed = f"turn timeout ({load.turn_timeout:g} s)"
            if not track.turn_end(stats, sent_ns=sent_ns, failed=failed):
                return
            messages.append({"role": "assistant", "content": "".join(text)})
    except Exception as exc:
        stats.errors[f"client: {type(exc).__name__} {str(exc)[:80]}"] += 1


async def _events_read(
    response: aiohttp.ClientResponse, track: ReplyTrack, stats: LoadStats, text: list[str], sent_ns: int
) -> str | None:
    """Read the server-sent events of one reply into `track` (and its text into `text`); the role chunk
    counts as the page's `start`. Return what failed, or None."""
    async for line in response.content:
        now_us = time.time_ns() // 1000
        if not line.startswith(b"data: "):
            continue
        payload = line[6:].strip()
        if payload == b"[DONE]":
            track.done = True
            return None
        event = orjson.loads(payload)
        if "error" in event:
            return f"error event: {str(event['error'].get('code'))[:40]}"
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            if "role" in delta:
                stats.start_ms.append((now_us * 1000 - sent_ns) / 1e6)
            content = delta.get("content")
            if content:
                text.append(content)
                track.chunk({"content": content}, now_us, stats)
    return "stream ended without [DONE]"
