"""API keys made, listed and revoked: by their user over `/api/api-keys/` (the page's panel), by an
operator in the admin, and by `manage.py apikey_create` / `apikey_revoke`. The key is shown once and
never stored; GET /v1/models answers through the test client too (CORS off by default)."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import Client
from django.utils import timezone

from conversations.apikeys.keys import KEY_RE, api_key_create
from conversations.apikeys.offers import key_offer, key_offers, key_scope_allows
from conversations.exceptions import TooManyApiKeys
from conversations.models import Agent, ApiKey, ChatModel

pytestmark = pytest.mark.django_db

LIST = "/api/api-keys/"


def signed_in(username: str, **client_options: Any) -> Client:
    client = Client(**client_options)
    client.force_login(get_user_model().objects.create_user(username, password="pw-for-tests-only"))
    return client


def post(client: Client, body: object) -> Any:
    return client.post(LIST, json.dumps(body), content_type="application/json")


def models_status(key: str) -> int:
    return Client().get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code


def test_a_user_makes_lists_and_revokes_a_key_shown_only_once():
    ada = signed_in("ada")
    made = post(ada, {"name": "laptop", "expires_days": 30})
    assert made.status_code == 201
    key = made.json()["key"]
    assert KEY_RE.fullmatch(key)
    assert made.json()["prefix"] == key[:12]
    assert models_status(key) == 200

    row = ApiKey.objects.get()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in json.dumps(list(ApiKey.objects.values()), default=str)  # only its hash is kept
    assert timedelta(days=29) < row.expires_at - timezone.now() <= timedelta(days=30)

    listed = ada.get(LIST).json()
    assert [entry["name"] for entry in listed["keys"]] == ["laptop"]
    assert "key" not in listed["keys"][0]
    assert key not in json.dumps(listed)
    assert listed["max"] == 10

    assert ada.delete(f"{LIST}{row.pk}/").json() == {"revoked": True}
    assert ada.get(LIST).json()["keys"] == []
    assert models_status(key) == 401
    assert ada.delete(f"{LIST}{row.pk}/").status_code == 404  # revoked already


def test_another_users_key_is_neither_listed_nor_revoked():
    ada, bob = signed_in("ada"), signed_in("bob")
    key = post(ada, {"name": "mine"}).json()
    assert bob.get(LIST).json()["keys"] == []
    assert bob.delete(f"{LIST}{key['id']}/").status_code == 404
    assert ApiKey.objects.get().revoked_at is None


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x" * 101},
        {"name": 3},
        {"expires_days": 0},
        {"expires_days": "7"},
        {"expires_days": True},
        {"scope": ["helper"]},  # the panel makes keys of the user's whole reach
        [],
    ],
)
def test_a_bad_request_is_refused_and_nothing_is_made(body):
    answer = post(signed_in("ada"), body)
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_api_key_request")
    assert not ApiKey.objects.exists()


def test_the_operators_maximum_lifetime_caps_every_key(settings):
    settings.CHAT_API_KEY_MAX_DAYS = 7
    ada = signed_in("ada")
    assert post(ada, {"expires_days": 8}).json()["code"] == "invalid_api_key_request"
    unbounded = post(ada, {"name": "no expiry asked"}).json()
    assert unbounded["expires_at"] is not None  # it gets the longest life there is
    assert ada.get(LIST).json()["max_days"] == 7


def test_a_user_holds_at_most_the_operators_number_of_keys_not_revoked(settings):
    settings.CHAT_API_KEYS_PER_USER = 2
    ada = signed_in("ada")
    first, _ = post(ada, {}).json(), post(ada, {})
    refused = post(ada, {})
    assert (refused.status_code, refused.json()["code"]) == (409, "too_many_api_keys")
    ApiKey.objects.filter(pk=first["id"]).update(expires_at=timezone.now())
    assert post(ada, {}).status_code == 409  # an expired key is listed, and counts, until revoked
    assert [key["expired"] for key in ada.get(LIST).json()["keys"]] == [False, True]
    ada.delete(f"{LIST}{first['id']}/")
    assert post(ada, {}).status_code == 201  # a revoked key frees its place


def test_a_visitor_is_asked_to_sign_in_and_writes_need_the_csrf_token():
    assert Client().get(LIST).json()["code"] == "login_required"
    assert post(Client(), {}).status_code == 401
    ada = signed_in("ada", enforce_csrf_checks=True)
    assert post(ada, {}).status_code == 403
    ada.get("/c/page/")
    token = ada.cookies["csrftoken"].value
    made = ada.post(LIST, "{}", content_type="application/json", headers={"X-CSRFToken": token})
    assert made.status_code == 201


def test_cors_is_off_by_default():
    key = api_key_create(get_user_model().objects.create_user("ada").pk)[1]
    origin = {"Origin": "https://tools.example.com"}
    listed = Client().get("/v1/models", headers={**origin, "Authorization": f"Bearer {key}"})
    assert listed.status_code == 200
    assert "Access-Control-Allow-Origin" not in listed.headers
    preflight = Client().options("/v1/models", headers=origin)
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_apikey_create_prints_the_key_alone_on_its_last_line():
    get_user_model().objects.create_user("ada")
    out = io.StringIO()
    call_command(
        "apikey_create", "ada", "--name", "ci", "--expires-days", "3", "--scope", "helper", stdout=out
    )
    key = out.getvalue().splitlines()[-1]
    assert KEY_RE.fullmatch(key)
    row = ApiKey.objects.get()
    assert (row.name, row.scope, row.user.username) == ("ci", ["helper"], "ada")
    assert timedelta(days=2) < row.expires_at - timezone.now() <= timedelta(days=3)
    assert models_status(key) == 200


def test_apikey_create_refuses_an_unknown_user_and_a_bad_expiry():
    with pytest.raises(CommandError, match="No user"):
        call_command("apikey_create", "nobody", stdout=io.StringIO())
    get_user_model().objects.create_user("ada")
    with pytest.raises(CommandError, match="expires_days"):
        call_command("apikey_create", "ada", "--expires-days", "0", stdout=io.StringIO())


@pytest.mark.parametrize("named_by", ["key", "prefix", "prefix…"])
def test_apikey_revoke_takes_the_key_or_its_prefix(named_by):
    key = api_key_create(get_user_model().objects.create_user("ada").pk)[1]
    name = {"key": key, "prefix": key[:12], "prefix…": key[:12] + "…"}[named_by]
    out = io.StringIO()
    call_command("apikey_revoke", name, stdout=out)
    assert "Revoked" in out.getvalue()
    assert models_status(key) == 401
    with pytest.raises(CommandError):
        call_command("apikey_revoke", "dck_nothing1", stdout=io.StringIO())


def test_the_admin_makes_a_key_shows_it_once_and_revokes_keys(staff_client):
    ada = get_user_model().objects.create_user("ada")
    added = staff_client.post(
        "/admin/conversations/apikey/add/",
        {"user": ada.pk, "name": "server", "scope": '["openai/gpt-5.1"]', "rate_limit_per_minute": "5"},
        follow=True,
    )
    assert added.status_code == 200
    row = ApiKey.objects.get()
    (shown,) = [str(message) for message in added.context["messages"] if "shown only now" in str(message)]
    key = shown.rsplit(" ", 1)[-1]
    assert key[:12] == row.prefix
    assert (row.scope, row.rate_limit_per_minute) == (["openai/gpt-5.1"], 5)
    assert models_status(key) == 200

    changelist = staff_client.get("/admin/conversations/apikey/").content.decode()
    assert row.prefix in changelist
    change = staff_client.get(f"/admin/conversations/apikey/{row.pk}/change/").content.decode()
    assert row.key_hash not in change
    assert row.key_hash not in changelist
    assert key not in change

    revoked = staff_client.post(
        "/admin/conversations/apikey/",
        {"action": "revoke", "_selected_action": [row.pk]},
        follow=True,
    )
    assert "Revoked 1 API key" in revoked.content.decode()
    assert models_status(key) == 401


def test_the_admin_makes_a_key_of_the_users_whole_reach_when_no_scope_is_given(staff_client):
    ada = get_user_model().objects.create_user("ada")
    staff_client.post("/admin/conversations/apikey/add/", {"user": ada.pk, "scope": ""})
    assert ApiKey.objects.get().scope == []


def test_the_admin_refuses_a_bad_scope_and_an_expiry_past_the_maximum(staff_client, settings):
    settings.CHAT_API_KEY_MAX_DAYS = 7
    ada = get_user_model().objects.create_user("ada")
    later = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%d")
    refused = staff_client.post(
        "/admin/conversations/apikey/add/",
        {"user": ada.pk, "scope": '"helper"', "expires_at_0": later, "expires_at_1": "12:00:00"},
    )
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert set(errors) >= {"scope", "expires_at"}
    assert not ApiKey.objects.exists()


def test_a_new_key_whose_prefix_is_taken_is_drawn_again(monkeypatch):
    ada = get_user_model().objects.create_user("ada")
    first = api_key_create(ada.pk)[1]
    secrets = iter([first[4:12] + "B" * 35, "C" * 43])  # the first draw meets the first key's prefix
    monkeypatch.setattr("conversations.apikeys.keys.secrets.token_urlsafe", lambda _: next(secrets))
    row, key = api_key_create(ada.pk)
    assert key == "dck_" + "C" * 43
    assert row.prefix == "dck_CCCCCCCC"
    assert ApiKey.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_keys_made_at_once_never_pass_the_cap(settings):
    """The user's row is locked while a key is made, so the last place goes to one request only."""
    settings.CHAT_API_KEYS_PER_USER = 3
    user_id = get_user_model().objects.create_user("ann").pk
    barrier = threading.Barrier(6)

    def make(_: int) -> str:
        barrier.wait()
        try:
            api_key_create(user_id)
            return "made"
        except TooManyApiKeys:
            return "refused"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(6) as pool:
        outcomes = sorted(pool.map(make, range(6)))
    assert outcomes == ["made"] * 3 + ["refused"] * 3
    assert ApiKey.objects.filter(user_id=user_id).count() == 3


def test_a_failure_under_v1_answers_openai_shaped_json(monkeypatch, caplog):
    key = api_key_create(get_user_model().objects.create_user("ada").pk)[1]

    def broken(row: ApiKey) -> list:
        raise RuntimeError("the catalog broke")

    monkeypatch.setattr("conversations.openai_api.models_list.key_offers", broken)
    answer = Client(raise_request_exception=False).get(
        "/v1/models", headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 500
    assert answer.json()["error"]["type"] == "server_error"
    assert answer.json()["error"]["code"] == "internal_error"
    assert "the catalog broke" not in answer.content.decode()
    assert "the catalog broke" in caplog.text


def test_the_offer_a_turn_names_is_the_one_the_list_holds(settings):
    settings.CHAT_USER_AGENTS = True
    ada = get_user_model().objects.create_user("ada")
    bob = get_user_model().objects.create_user("bob")
    Agent.objects.create(slug="helper", name="Helper", model_names=["openai/gpt-5.1"])
    Agent.objects.create(slug="off-duty", name="Off", model_names=["openai/gpt-5.1"], enabled=False)
    Agent.owned.create(owner=ada, slug="my:0123abcd", name="Mine", model_names=["openai/gpt-5.1"])
    Agent.owned.create(owner=bob, slug="my:4567cdef", name="Bob's", model_names=["openai/gpt-5.1"])
    ChatModel.objects.filter(name="openai/gpt-5.1").update(enabled=False)
    row, _ = api_key_create(ada.pk, name="k", scope=["helper"])
    whole_reach, _ = api_key_create(ada.pk, name="all")

    listed = key_offers(whole_reach)

    assert [key_offer(row, offer.id) for offer in listed] == listed
    assert {offer.id for offer in listed} >= {"helper", "my:0123abcd"}
    for absent in ("off-duty", "my:4567cdef", "openai/gpt-5.1", "nobody"):
        assert key_offer(row, absent) is None
    assert [key_scope_allows(row, offer) for offer in listed[:2]] == [True, False]
