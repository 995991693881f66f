"""A signed-in user's own agents over HTTP (`/api/my-agents/`): built, listed, changed and deleted by their
owner alone, under the operator's agents' rules and caps of their own, and shown in that owner's picker
only; an operator turns the feature off with CHAT_USER_AGENTS."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from django.urls import reverse

from conversations.agents import own
from conversations.exceptions import TooManyAgents
from conversations.models import Agent, ChatModel

pytestmark = pytest.mark.django_db

LIST = "/api/my-agents/"
WRITER = {
    "name": "Essay coach",
    "description": "Reads drafts closely.",
    "instructions": "You coach essay writing. Ask one question at a time.",
    "models": ["openai/gpt-5.1", "anthropic/claude-opus-4-5-20251101"],
    "settings": {"temperature": 0.4, "max_tokens": 700, "reasoning_effort": "low"},
    "mcp_servers": ["acme/search@1.2.0"],
}


def signed_in(username: str, **client_options: Any) -> Client:
    client = Client(**client_options)
    client.force_login(get_user_model().objects.create_user(username, password="pw-for-tests-only"))
    return client


def post(client: Client, body: object, url: str = LIST, method: str = "post") -> Any:
    return getattr(client, method)(url, json.dumps(body), content_type="application/json")


def one(agent_id: int) -> str:
    return f"{LIST}{agent_id}/"


def test_a_user_builds_lists_changes_and_deletes_an_agent_of_their_own():
    alice = signed_in("alice")
    created = post(alice, WRITER)
    assert created.status_code == 201, created.content
    agent = created.json()
    assert agent["slug"].startswith("my:")
    assert {key: agent[key] for key in WRITER} == WRITER
    stored = Agent.owned.get(pk=agent["id"])
    assert (stored.owner.username, stored.model_names, stored.instructions) == (
        "alice",
        WRITER["models"],
        WRITER["instructions"],
    )

    listed = alice.get(LIST).json()
    assert listed == {"agents": [agent], "max": 20}

    changed = post(alice, {**WRITER, "name": "Coach", "models": ["openai/gpt-5.1"]}, one(agent["id"]), "put")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["name"], changed.json()["slug"]) == ("Coach", agent["slug"])  # the slug stays
    assert Agent.owned.get(pk=agent["id"]).model_names == ["openai/gpt-5.1"]

    assert alice.delete(one(agent["id"])).json() == {"deleted": True}
    assert alice.get(LIST).json()["agents"] == []
    assert not Agent.owned.exists()


def test_own_agents_stay_out_of_the_operators_lists_and_the_admin(staff_client):
    alice = signed_in("alice")
    post(alice, WRITER)
    Agent.objects.create(slug="house", name="House", model_names=["openai/gpt-5.1"])
    assert [a["slug"] for a in alice.get(reverse("conversations:agent_list")).json()["agents"]] == ["house"]
    changelist = staff_client.get(reverse("admin:conversations_agent_changelist")).content.decode()
    assert "House" in changelist
    assert "Essay coach" not in changelist
    assert list(Agent.objects.values_list("slug", flat=True)) == ["house"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("not json", "Send a JSON object"),
        ("[" * 100_000, "Send a JSON object"),
        ({**WRITER, "settings": {"reasoning_effort": "\ud800"}}, "reasoning_effort must be one of"),
        (["a", "list"], "Send a JSON object"),
        ({**WRITER, "colour": "#fff"}, "'colour' is not a field"),
        ({**WRITER, "name": "  "}, "name: an agent needs a name"),
        ({**WRITER, "name": "n" * 101}, "name: at most 100 characters"),
        ({**WRITER, "name": 7}, "name: a text"),
        ({**WRITER, "instructions": "i" * 8001}, "instructions: at most 8000 characters"),
        ({**WRITER, "description": "d" * 301}, "description: at most 300"),
        ({**WRITER, "models": []}, "models: one or more model ids"),
        ({**WRITER, "models": ["nope/none"]}, "'nope/none' is not a model this server offers"),
        ({**WRITER, "models": ["openai/gpt-5.1"] * 2}, "models: A model may appear only once"),
        ({**WRITER, "settings": {"temperature": 7}}, "settings: temperature must be a number from 0 to 2"),
        ({**WRITER, "settings": {"tempreature": 1}}, "'tempreature' is not a setting"),
        ({**WRITER, "settings": {str(i): 1 for i in range(50)}}, "settings: an object of temperature"),
        ({**WRITER, "settings": "hot"}, "settings: an object"),
        ({**WRITER, "mcp_servers": ["https://10.0.0.1/mcp"]}, "mcp_servers: "),
        ({**WRITER, "mcp_servers": "acme/search"}, "mcp_servers: `mcp_servers` must be a list"),
        ({**WRITER, "mcp_servers": ["https://example.com/\ud800"]}, "must not contain control characters"),
        ({**WRITER, "mcp_servers": [f"acme/s{i}" for i in range(9)]}, "At most 8 MCP servers"),
    ],
)
def test_a_bad_agent_is_refused_naming_its_field_and_nothing_is_stored(body, words):
    alice = signed_in("alice")
    data = body if isinstance(body, str) else json.dumps(body)
    refused = alice.post(LIST, data, content_type="application/json")
    assert refused.status_code == 400, refused.content
    assert refused.json()["code"] == "invalid_agent"
    assert words in refused.json()["message"]
    assert not Agent.owned.exists()


def test_a_model_the_operator_disabled_or_a_max_tokens_past_its_limit_is_refused():
    ChatModel.objects.filter(name="openai/gpt-5.1").update(enabled=False)
    alice = signed_in("alice")
    assert "not a model this server offers" in post(alice, WRITER).json()["message"]
    ChatModel.objects.filter(name="openai/gpt-5.1").update(enabled=True, output_token_limit=500)
    refused = post(alice, WRITER)  # max_tokens 700, the catalog's output limit 500
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_agent")
    assert "at most 500" in refused.json()["message"]


def test_an_update_is_checked_as_a_new_agent_is_and_a_refusal_changes_nothing():
    alice = signed_in("alice")
    agent = post(alice, WRITER).json()
    refused = post(alice, {**WRITER, "settings": {"top_p": 3}}, one(agent["id"]), "put")
    assert refused.json()["code"] == "invalid_agent"
    assert Agent.owned.get(pk=agent["id"]).settings == WRITER["settings"]


def test_a_user_keeps_at_most_the_operators_number_of_agents(settings):
    settings.CHAT_USER_AGENTS_MAX = 2
    alice = signed_in("alice")
    for _ in range(2):
        assert post(alice, WRITER).status_code == 201
    refused = post(alice, WRITER)
    assert (refused.status_code, refused.json()["code"]) == (409, "too_many_agents")
    assert "2 agents" in refused.json()["message"]
    assert post(signed_in("bob"), WRITER).status_code == 201  # a cap per user
    assert Agent.owned.filter(owner__username="alice").count() == 2


def test_another_user_neither_sees_nor_changes_nor_deletes_someone_elses_agent():
    alice, bob = signed_in("alice"), signed_in("bob")
    agent = post(alice, WRITER).json()
    assert bob.get(LIST).json()["agents"] == []
    for answer in (
        post(bob, {**WRITER, "name": "Taken"}, one(agent["id"]), "put"),
        bob.delete(one(agent["id"])),
    ):
        assert (answer.status_code, answer.json()) == (404, {"code": "not_found"})
    assert Agent.owned.get(pk=agent["id"]).name == WRITER["name"]
    assert bob.delete(one(2**70)).status_code == 404  # past any id: a missing one, not an error


def test_a_visitor_is_asked_to_sign_in():
    visitor = Client()
    visitor.get("/c/warmup/")  # a browser session, anonymous
    for answer in (visitor.get(LIST), post(visitor, WRITER), Client().get(LIST)):
        assert (answer.status_code, answer.json()["code"]) == (401, "login_required")
    assert not Agent.owned.exists()


def test_writes_need_the_csrf_token_as_every_form_does():
    alice = signed_in("alice", enforce_csrf_checks=True)
    assert post(alice, WRITER).status_code == 403
    alice.get("/c/page/")  # the page sets the token's cookie
    token = alice.cookies["csrftoken"].value
    created = alice.post(
        LIST, json.dumps(WRITER), content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert created.status_code == 201


def test_the_picker_shows_my_agents_as_a_group_of_the_owners_only():
    alice, bob = signed_in("alice"), signed_in("bob")
    agent = post(alice, WRITER).json()
    Agent.objects.create(slug="house", name="House", model_names=["openai/gpt-5.1"])
    page = alice.get("/c/page/").content.decode()
    assert '<optgroup label="My agents" data-group="own">' in page
    assert f'value="agent:{agent["slug"]}"' in page
    assert 'id="my-agents-open"' in page
    assert WRITER["instructions"] not in page  # fetched by the builder, never rendered
    other = bob.get("/c/page/").content.decode()
    assert agent["slug"] not in other
    assert "Essay coach" not in other
    assert 'label="My agents"' not in other


def test_an_operator_turns_it_off_the_builder_goes_and_the_api_refuses(settings):
    alice = signed_in("alice")
    agent = post(alice, WRITER).json()
    settings.CHAT_USER_AGENTS = False
    for answer in (
        alice.get(LIST),
        post(alice, WRITER),
        post(alice, WRITER, one(agent["id"]), "put"),
        alice.delete(one(agent["id"])),
    ):
        assert (answer.status_code, answer.json()["code"]) == (403, "user_agents_off")
    page = alice.get("/c/page/").content.decode()
    assert "my-agents-open" not in page
    assert "agents-dialog" not in page
    assert agent["slug"] not in page
    assert Agent.owned.count() == 1  # kept, for when it is on again


@pytest.mark.django_db(transaction=True)
def test_builds_at_once_never_pass_the_cap(settings):
    """The user's row is locked while one is built, so the last place goes to one request only."""
    settings.CHAT_USER_AGENTS_MAX = 3
    user_id = get_user_model().objects.create_user("ann", password="pw-for-tests-only").pk
    barrier = threading.Barrier(6)

    def build(_: int) -> str:
        barrier.wait()
        try:
            own.own_agent_create(user_id, WRITER)
            return "built"
        except TooManyAgents:
            return "refused"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(6) as pool:
        outcomes = sorted(pool.map(build, range(6)))
    assert outcomes == ["built"] * 3 + ["refused"] * 3
    assert Agent.owned.filter(owner_id=user_id).count() == 3
