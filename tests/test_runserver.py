"""`manage.py runserver` as a real process: the page over HTTP and the chat over a real WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx
import pytest
from django.conf import settings

from bench.upload_costs import upload as http_upload
from conversations.models import Conversation, Message

from .chat_sockets import chunks_text
from .processes import RunServer
from .servers import page_session_headers, raw_request
from .standin_control import StandIn
from .test_attachments import png_with_metadata
from .upload_bombs import pdf_form_xobject_bomb

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

FRAME_TIMEOUT = 10.0


def child_database_url() -> str:
    """A DATABASE_URL for the test database pytest-django created, so the child sees the test's rows."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("the runserver child shares the test database: these tests need Postgres")
    password = f":{quote(database['PASSWORD'], safe='')}" if database["PASSWORD"] else ""
    user = quote(database["USER"], safe="")
    return f"postgres://{user}{password}@{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}"


def runserver_env(standin_server: StandIn, media: Path, **extra: str) -> dict[str, str]:
    """A runserver child's environment: the test database, the stand-in, its own media folder."""
    return dict(
        os.environ,
        DATABASE_URL=child_database_url(),
        DEDALUS_BASE_URL=standin_server.url,
        DEDALUS_API_KEY="test-key",
        DJANGO_SECRET_KEY="runserver-test-secret-key",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        CHAT_MEDIA_ROOT=str(media),
        **extra,
    )


@pytest.fixture(scope="module")
def chat_server(
    django_db_setup: None, standin_server: StandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunServer]:
    """`manage.py runserver` on a free port, on the test database, talking to the stand-in."""
    env = runserver_env(standin_server, tmp_path_factory.mktemp("runserver-media"), DJANGO_DEBUG="0")
    server = RunServer("runserver", env, tmp_path_factory.mktemp("runserver"))
    try:
        yield server.start()
    finally:
        server.stop()


async def chat_exchange(
    server: RunServer, path: str, frame: dict[str, Any], *, cookie_less: bool = False
) -> list[dict[str, Any]]:
    """Connect to `path` (as a browser with a session, unless `cookie_less`), send `frame` after the
    history; return every frame, history to `done`/`error`."""
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        headers = (
            {"Origin": server.origin} if cookie_less else await page_session_headers(session, server.origin)
        )
        async with session.ws_connect(server.url(path), headers=headers) as chat:
            frames = [await chat.receive_json(timeout=FRAME_TIMEOUT)]
            assert frames[0]["type"] == "history"
            await chat.send_json(frame)
            while frames[-1]["type"] not in ("done", "error"):
                frames.append(await chat.receive_json(timeout=FRAME_TIMEOUT))
            return frames


def test_runserver_streams_a_reply_over_a_real_websocket_and_stores_it(chat_server, standin):
    model = "google/gemini-3-pro-preview"
    frames = asyncio.run(
        chat_exchange(
            chat_server,
            "/ws/chat/runserver-main/",
            {"message": "over real tcp [[standin tokens=30 delay_ms=5]]", "model": model},
        )
    )

    history, start, *chunks, done = frames
    assert history["type"] == "history"
    assert (history["session_id"], history["messages"]) == ("runserver-main", [])
    assert (start["type"], start["model"]) == ("start", model)
    assert chunks
    assert {frame["type"] for frame in chunks} == {"chunk"}
    assert (done["type"], done["finish_reason"]) == ("done", "stop")
    assert done["usage"]["completion_tokens"] == 30

    reply = Message.objects.get(pk=start["message_id"])
    assert (reply.role, reply.status, reply.model) == ("assistant", "complete", model)
    assert reply.content == chunks_text(chunks)
    assert reply.content.startswith("You asked: “over real tcp”. ")
    assert Message.objects.get(role="user").content == "over real tcp [[standin tokens=30 delay_ms=5]]"
    (request,) = standin.requests()
    assert request["body"]["model"] == model

    with httpx.Client(base_url=chat_server.origin, timeout=FRAME_TIMEOUT) as http:
        new = http.get("/")
        assert new.status_code == 302
        assert new.headers["location"].startswith("/c/")
        page = http.get(new.headers["location"])
        assert page.status_code == 200
        assert 'id="composer"' in page.text
        assert http.get("/c/runserver-main/").status_code == 200
    assert "Traceback" not in chat_server.output()


def test_runserver_serves_the_original_pages_socket_path(chat_server, standin):
    frames = asyncio.run(
        chat_exchange(chat_server, "/ws/runserver-legacy", {"message": "from the old page"}, cookie_less=True)
    )

    assert [frames[0]["type"], frames[1]["type"], frames[-1]["type"]] == ["history", "start", "done"]
    text = chunks_text(frames)
    assert text.startswith("You asked: “from the old page”. ")
    conversation = Conversation.objects.get(session_id="runserver-legacy")
    (reply,) = Message.objects.filter(conversation=conversation, role="assistant")
    assert (reply.status, reply.content) == ("complete", text)


def test_runserver_refuses_an_oversized_upload_from_its_headers(chat_server):
    # runserver is Daphne too: the same request class answers before the body comes (none is sent here).
    head = f"POST /api/attachments/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {200 * 1024 * 1024}"
    answer = raw_request(chat_server.port, head, [], close_wait=0)
    assert (answer.status, answer.json()["code"]) == (413, "attachment_too_large"), answer


def test_runserver_reads_uploads_in_its_workers(chat_server):
    """The upload workers start under runserver as under Daphne: an image is read, a bomb refused."""
    kept: dict[str, object] = {}
    http_upload(chat_server.port, "chart.png", png_with_metadata(), 60, kept)
    assert str(kept["answer"]).startswith("201 "), kept
    refused: dict[str, object] = {}
    http_upload(chat_server.port, "form.pdf", pdf_form_xobject_bomb(), 60, refused)
    assert str(refused["answer"]).startswith("422 "), refused


def test_ctrl_c_under_make_runs_reloader_stores_every_chunk_a_tab_was_shown(
    django_db_setup: None, standin_server: StandIn, tmp_path
):
    """`make run` is runserver with its autoreloader, where Daphne installs no signal handler: Ctrl-C
    must still drain (replies in flight stored as interrupted, with all they streamed), not drop the text
    streamed since the last save."""
    env = runserver_env(
        standin_server,
        tmp_path / "media",
        DJANGO_DEBUG="1",
        CHAT_FLUSH_INTERVAL="30",  # no save on the way: only the drain can store what was streamed
        CHAT_SHUTDOWN_GRACE_SECONDS="1",
    )
    server = RunServer("runserver-reloader", env, tmp_path, reloader=True).start(timeout=60)

    async def shown_then_interrupted() -> str:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            headers = await page_session_headers(session, server.origin)
            async with session.ws_connect(server.url("/ws/chat/ctrl-c/"), headers=headers) as chat:
                assert (await chat.receive_json(timeout=FRAME_TIMEOUT))["type"] == "history"
                await chat.send_json({"message": "long one [[standin tokens=2000 delay_ms=10]]"})
                frames = []
                while sum(frame["type"] == "chunk" for frame in frames) < 20:
                    frames.append(await chat.receive_json(timeout=FRAME_TIMEOUT))
                server.interrupt()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, TypeError):
                    async for message in chat:
                        if message.type != aiohttp.WSMsgType.TEXT:
                            break
                        frames.append(json.loads(message.data))
                return chunks_text(frames)

    try:
        shown = asyncio.run(shown_then_interrupted())
        assert server.wait(30) in (0, 1, -signal.SIGINT), server.output()[-3000:]
    finally:
        server.stop()
    reply = Message.objects.get(conversation__session_id="ctrl-c", role="assistant")
    assert reply.status == "interrupted", server.output()[-3000:]
    assert len(shown) > 0
    assert reply.content.startswith(shown), (len(reply.content), len(shown))
