"""The API's callers as the tests make them: a user's key, and OpenAI's client on a live server."""

from __future__ import annotations

import openai
from django.contrib.auth import get_user_model

from conversations.apikeys.keys import api_key_create

from .processes import DaphneServer


def key_for(username: str = "ada", **options: object) -> str:
    """A new key of the user `username` (made if missing), with `api_key_create`'s options."""
    user = get_user_model().objects.filter(username=username).first()
    user = user or get_user_model().objects.create_user(username, password="pw-for-tests-only")
    return api_key_create(user.pk, **options)[1]


def client(server: DaphneServer, key: str) -> openai.OpenAI:
    """OpenAI's client on `server`'s /v1/, without its retries (a refusal is the answer to test)."""
    return openai.OpenAI(api_key=key, base_url=f"{server.origin}/v1", max_retries=0)
