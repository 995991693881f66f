"""The API's callers as the tests make them: a live server, a user's key, OpenAI's client on it, and a
page's tab signed in as that user."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import openai
from django.conf import settings
from django.contrib.auth import get_user_model

from conversations.apikeys.keys import api_key_create

from .instances import instance_env
from .processes import DaphneServer
from .standin_control import StandIn


def api_server_start(
    standin: StandIn, logs: Path, name: str, *, flags: Sequence[str] = (), **overrides: str
) -> DaphneServer:
    """A live Daphne for the API's tests, started, its Redis keys under a prefix of its own and
    `overrides` over the instance's settings."""
    prefix = f"{name}-{uuid.uuid4().hex[:8]}"
    env = instance_env(standin, settings.REDIS_URL, CHAT_REDIS_PREFIX=prefix, **overrides)
    return DaphneServer(name, env, logs, flags=flags).start()


def completions_server(standin: StandIn, logs: Path, *, messages_per_minute: int) -> DaphneServer:
    """A live Daphne for the completions' tests: no key rate, no titles, quick pings."""
    return api_server_start(
        standin,
        logs,
        "completions",
        CHAT_API_KEY_RATE_LIMIT="0",
        CHAT_TITLE_MODEL="",
        CHAT_API_PING_SECONDS="0.3",
        CHAT_RATE_LIMIT=f"{messages_per_minute}/minute",
    )


def key_for(username: str = "ada", **options: object) -> str:
    """A new key of the user `username` (made if missing), with `api_key_create`'s options."""
    user = get_user_model().objects.filter(username=username).first()
    user = user or get_user_model().objects.create_user(username, password="pw-for-tests-only")
    return api_key_create(user.pk, **options)[1]


def client(server: DaphneServer, key: str) -> openai.OpenAI:
    """OpenAI's client on `server`'s /v1/, without its retries (a refusal is the answer to test)."""
    return openai.OpenAI(api_key=key, base_url=f"{server.origin}/v1", max_retries=0)


async def page_tab(
    http: aiohttp.ClientSession, server: DaphneServer, session_id: str, username: str = "ada"
) -> aiohttp.ClientWebSocketResponse:
    """The chat page's socket on conversation `session_id`, signed in as `username` (its `http` session
    keeps the cookies)."""
    async with http.get(f"{server.origin}/accounts/login/") as page:
        assert page.status == 200
    token = next(cookie.value for cookie in http.cookie_jar if cookie.key == "csrftoken")
    login = {"username": username, "password": "pw-for-tests-only", "csrfmiddlewaretoken": token}
    async with http.post(f"{server.origin}/accounts/login/", data=login, allow_redirects=False) as done:
        assert done.status == 302
    return await http.ws_connect(server.ws_url(session_id), headers={"Origin": server.origin})
