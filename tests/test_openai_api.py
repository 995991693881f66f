"""The OpenAI-compatible API through OpenAI's own Python client (sync and async) against a live Daphne on
the test database: /v1/models lists what a key may use, and a key that is revoked, expired, unknown,
missing, out of its rate or its user's is refused as OpenAI's API refuses one."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta

import httpx
import openai
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from conversations.models import Agent, ApiKey, ChatModel

from .openai_clients import api_server_start, client, key_for
from .processes import DaphneServer
from .seed_models import SEED_MODELS
from .standin_control import StandIn

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

ALLOWED_ORIGIN = "https://tools.example.com"
SEEDED = [name for name, *_ in sorted(SEED_MODELS, key=lambda row: row[3])]


@pytest.fixture(scope="module")
def api_server(
    standin_server: StandIn, tmp_path_factory: pytest.TempPathFactory, django_db_setup: None
) -> Iterator[DaphneServer]:
    """One instance for the module, its rate counts under a Redis prefix of this run's own."""
    logs = tmp_path_factory.mktemp("openai-api-logs")
    server = api_server_start(standin_server, logs, "openai-api", CHAT_API_CORS_ORIGINS=ALLOWED_ORIGIN)
    yield server
    server.stop()


def helper_agent(**fields: object) -> Agent:
    return Agent.objects.create(slug="helper", name="Helper", model_names=["openai/gpt-5.1"], **fields)


def test_models_list_has_the_enabled_agents_and_models(api_server: DaphneServer) -> None:
    helper_agent()
    Agent.objects.create(slug="off-duty", name="Off", model_names=["openai/gpt-5.1"], enabled=False)
    ChatModel.objects.filter(name=SEEDED[-1]).update(enabled=False)
    key = key_for()

    listed = client(api_server, key).models.list()

    assert [model.id for model in listed.data] == ["helper", *SEEDED[:-1]]
    first = listed.data[0]
    assert (first.object, first.owned_by) == ("model", "operator")
    assert isinstance(first.created, int)
    assert first.created > 0
    assert listed.data[1].owned_by == SEEDED[0].split("/")[0]


async def test_the_async_client_lists_them_too(api_server: DaphneServer) -> None:
    key = await sync_to_async(key_for)()
    async with openai.AsyncOpenAI(api_key=key, base_url=f"{api_server.origin}/v1", max_retries=0) as api:
        listed = await api.models.list()
        assert [model.id async for model in listed] == SEEDED
        revoked = await sync_to_async(ApiKey.objects.update)(revoked_at=timezone.now())
        assert revoked == 1
        with pytest.raises(openai.AuthenticationError):
            await api.models.list()


def test_a_users_own_agents_are_listed_for_their_keys_only(api_server: DaphneServer) -> None:
    key = key_for("ada")
    other = key_for("bob")
    ada = get_user_model().objects.get(username="ada")
    Agent.owned.create(owner=ada, slug="my:0123abcd", name="Mine", model_names=["openai/gpt-5.1"])

    assert [model.id for model in client(api_server, key).models.list().data][0] == "my:0123abcd"
    assert "my:0123abcd" not in [model.id for model in client(api_server, other).models.list().data]


def test_a_key_scoped_to_one_agent_lists_only_it(api_server: DaphneServer) -> None:
    helper_agent()
    Agent.objects.create(slug="critic", name="Critic", model_names=["openai/gpt-5.1"])
    key = key_for(scope=["critic"])

    assert [model.id for model in client(api_server, key).models.list().data] == ["critic"]


def test_a_revoked_key_stops_at_once(api_server: DaphneServer) -> None:
    key = key_for()
    api = client(api_server, key)
    api.models.list()

    call_command("apikey_revoke", key[:12], stdout=io.StringIO())

    with pytest.raises(openai.AuthenticationError) as refused:
        api.models.list()
    assert refused.value.status_code == 401
    assert refused.value.body == {
        "message": "This API key has been revoked.",
        "type": "invalid_request_error",
        "code": "invalid_api_key",
        "param": None,
    }


def test_a_revoked_key_stops_on_every_instance_at_once(instances: list[DaphneServer]) -> None:
    key = key_for()
    apis = [client(instance, key) for instance in instances]
    for api in apis:
        api.models.list()  # each instance has read the key once

    call_command("apikey_revoke", key, stdout=io.StringIO())

    for api in apis:
        with pytest.raises(openai.AuthenticationError, match="revoked"):
            api.models.list()


def test_an_expired_key_is_refused(api_server: DaphneServer) -> None:
    key = key_for(expires_at=timezone.now() + timedelta(days=1))
    ApiKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(openai.AuthenticationError, match="expired"):
        client(api_server, key).models.list()


def test_unknown_malformed_and_inactive_users_keys_are_refused(api_server: DaphneServer) -> None:
    key = key_for()
    unknown = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    for wrong in (unknown, "dck_short", "sk-" + "x" * 48, key + "x"):
        with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
            client(api_server, wrong).models.list()
    get_user_model().objects.update(is_active=False)
    with pytest.raises(openai.AuthenticationError):
        client(api_server, key).models.list()


def test_a_request_without_a_key_gets_an_openai_shaped_401(api_server: DaphneServer) -> None:
    missing = httpx.get(f"{api_server.origin}/v1/models")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert set(missing.json()["error"]) == {"message", "type", "code", "param"}
    basic = httpx.get(f"{api_server.origin}/v1/models", headers={"Authorization": "Basic " + "x" * 10_000})
    assert basic.status_code == 401


def test_other_paths_and_methods_are_openai_shaped(api_server: DaphneServer) -> None:
    key = key_for()
    headers = {"Authorization": f"Bearer {key}"}
    unknown = httpx.post(f"{api_server.origin}/v1/embeddings", headers=headers, json={})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    wrong_method = httpx.post(f"{api_server.origin}/v1/models", headers=headers, json={})
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"


def test_a_key_past_its_rate_is_told_when_to_retry(api_server: DaphneServer) -> None:
    key = key_for()
    ApiKey.objects.update(rate_limit_per_minute=2)
    api = client(api_server, key)
    api.models.list()
    api.models.list()
    with pytest.raises(openai.RateLimitError) as refused:
        api.models.list()
    assert int(refused.value.response.headers["Retry-After"]) >= 1
    assert refused.value.body["code"] == "rate_limited"


def test_last_use_is_written_at_most_once_a_minute(api_server: DaphneServer) -> None:
    key = key_for()
    api = client(api_server, key)
    api.models.list()
    first = ApiKey.objects.get().last_used_at
    assert first is not None
    api.models.list()
    assert ApiKey.objects.get().last_used_at == first
    ApiKey.objects.update(last_used_at=first - timedelta(minutes=2))
    api.models.list()
    assert ApiKey.objects.get().last_used_at > first


def test_an_allowed_origin_gets_cors_headers_and_its_preflight(api_server: DaphneServer) -> None:
    key = key_for()
    preflight = httpx.options(
        f"{api_server.origin}/v1/models",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, x-stainless-os",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "x-stainless-os" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers

    listed = httpx.get(
        f"{api_server.origin}/v1/models", headers={"Origin": ALLOWED_ORIGIN, "Authorization": f"Bearer {key}"}
    )
    assert listed.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    refused = httpx.get(f"{api_server.origin}/v1/models", headers={"Origin": ALLOWED_ORIGIN})
    assert refused.status_code == 401  # a page may read why
    assert refused.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN

    other = httpx.options(f"{api_server.origin}/v1/models", headers={"Origin": "https://elsewhere.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
