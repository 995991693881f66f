"""Agents as an operator defines them: in the admin or from a file (`manage.py agents_load`), and as
clients list them (`GET /api/agents/`)."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command, execute_from_command_line
from django.db import connections
from django.urls import reverse

from conversations.agents.definitions import FILE_FIELDS
from conversations.models import Agent

pytestmark = pytest.mark.django_db

RESEARCHER = {
    "slug": "researcher",
    "name": "Researcher",
    "description": "Finds sources and cites them.",
    "instructions": "You are a careful researcher. Cite every claim.",
    "models": ["openai/gpt-5.1", "anthropic/claude-opus-4-5-20251101"],
    "settings": {"temperature": 0.2, "max_tokens": 2000, "reasoning_effort": "high"},
    "mcp_servers": ["acme/search@1.2.0"],
    "default": True,
}


def load(tmp_path: Path, document: object, *, name: str = "agents.json") -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    out = StringIO()
    call_command("agents_load", str(path), stdout=out)
    return out.getvalue()


def test_a_file_of_agents_creates_them_then_updates_them_by_slug(tmp_path):
    assert "1 agent(s) created, 0 updated" in load(tmp_path, {"agents": [RESEARCHER]})
    agent = Agent.objects.get(slug="researcher")
    assert agent.model_names == RESEARCHER["models"]
    assert agent.settings == RESEARCHER["settings"]
    assert agent.instructions == RESEARCHER["instructions"]
    assert (agent.is_default, agent.enabled, agent.mcp_servers) == (True, True, ["acme/search@1.2.0"])

    changed = {**RESEARCHER, "instructions": "Be brief.", "default": False}
    writer = {"slug": "writer", "name": "Writer", "models": ["google/gemini-3-pro-preview"]}
    assert "1 agent(s) created, 1 updated" in load(tmp_path, {"agents": [changed, writer]})
    assert Agent.objects.get(slug="researcher").instructions == "Be brief."
    assert Agent.objects.count() == 2


def test_a_yaml_file_loads_like_json(tmp_path):
    yaml_text = """
agents:
  - slug: coder
    name: Coder
    models: [openai/gpt-5.1]
    settings: {temperature: 0}
"""
    load(tmp_path, yaml_text, name="agents.yaml")
    assert Agent.objects.get(slug="coder").settings == {"temperature": 0}


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        (
            {**RESEARCHER, "models": ["nope/none"]},
            "agents[0] (researcher), field 'models': Not in the model catalog",
        ),
        ({**RESEARCHER, "models": []}, "field 'models'"),
        (
            {**RESEARCHER, "settings": {"temperature": 3}},
            "field 'settings': temperature must be a number from 0",
        ),
        ({**RESEARCHER, "settings": {"tempreature": 1}}, "'tempreature' is not a setting"),
        ({**RESEARCHER, "settings": {"reasoning_effort": "max"}}, "reasoning_effort must be one of"),
        ({**RESEARCHER, "mcp_servers": ["http://10.0.0.1/mcp"]}, "field 'mcp_servers'"),
        (  # quoted as every MCP message quotes what was written, whatever quotes it holds itself
            {**RESEARCHER, "mcp_servers": ["acme/it's"]},
            "field 'mcp_servers': 'acme/it's': An MCP server must be a slug like org/name",
        ),
        ({**RESEARCHER, "slug": "not a slug"}, "field 'slug'"),
        ({"slug": "x", "name": "X"}, "agents[0] (x): field 'models' is required"),
        ({**RESEARCHER, "colour_scheme": "dark"}, "unknown key 'colour_scheme'"),
    ],
)
def test_a_bad_entry_is_named_with_its_field_and_nothing_changes(tmp_path, entry, named):
    load(tmp_path, {"agents": [{"slug": "kept", "name": "Kept", "models": ["openai/gpt-5.1"]}]})
    good = {"slug": "also-new", "name": "Also new", "models": ["openai/gpt-5.1"]}
    changed = {"slug": "kept", "name": "Renamed", "models": ["openai/gpt-5.1"]}

    with pytest.raises(CommandError) as refused:
        load(tmp_path, {"agents": [entry, good, changed]})

    assert named in str(refused.value)
    assert "Nothing was changed" in str(refused.value)
    assert list(Agent.objects.values_list("slug", "name")) == [("kept", "Kept")]


def test_every_problem_of_a_file_is_reported_at_once_and_nothing_changes(tmp_path):
    load(tmp_path, {"agents": [{"slug": "kept", "name": "Kept", "models": ["openai/gpt-5.1"]}]})
    document = {
        "agents": [
            {**RESEARCHER, "models": ["nope/none"], "settings": {"temperature": 3}, "colour": "red"},
            {
                "slug": "writer",
                "name": "Writer",
                "models": ["openai/gpt-5.1"],
                "mcp_servers": ["http://10.0.0.1/mcp"],
                "colour_scheme": "dark",
            },
            {"name": "No slug", "models": [], "position": -1},
            {**RESEARCHER, "name": "Twice"},  # the same slug again, and a second default
            {"slug": "kept", "name": "Renamed", "models": ["openai/gpt-5.1"]},  # good, yet not stored
        ]
    }

    with pytest.raises(CommandError) as refused:
        load(tmp_path, document)

    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'agents.json'}: 10 problems. Nothing was changed.\n")
    problems = [line.removeprefix("  - ") for line in message.splitlines()[1:]]
    assert problems == [
        "At most one agent may be the default; the file has 2.",
        "agents[0] (researcher), field 'colour': A colour as #rrggbb, such as #7c3aed, or empty for none.",
        "agents[0] (researcher), field 'models': Not in the model catalog: nope/none.",
        "agents[0] (researcher), field 'settings': temperature must be a number from 0 to 2.",
        "agents[1] (writer): unknown key 'colour_scheme' (keys: " + ", ".join(FILE_FIELDS) + ").",
        "agents[1] (writer), field 'mcp_servers': 'http://10.0.0.1/mcp': An MCP server must be a slug like "
        "org/name or an https:// URL.",
        "agents[2]: field 'slug' is required.",
        "agents[2], field 'models': One or more model ids: the first answers, the others may take over.",
        "agents[2], field 'position': Ensure this value is greater than or equal to 0.",
        "agents[3] (researcher): slug 'researcher' appears twice in the file.",
    ]
    assert list(Agent.objects.values_list("slug", "name")) == [("kept", "Kept")]


def test_a_refused_file_ends_the_command_with_an_error_status(tmp_path, capsys, monkeypatch):
    # As `manage.py agents_load` runs it; the connection it would close at the end is the test's own.
    monkeypatch.setattr(connections, "close_all", lambda: None)
    path = tmp_path / "agents.yaml"
    path.write_text("agents:\n  - {slug: a, name: A, models: [nope/one]}\n  - {slug: b, name: B}\n")
    with pytest.raises(SystemExit) as ended:
        execute_from_command_line(["manage.py", "agents_load", str(path)])
    assert ended.value.code == 1
    err = capsys.readouterr().err
    assert "2 problems. Nothing was changed." in err
    assert "agents[0] (a), field 'models': Not in the model catalog: nope/one." in err
    assert "agents[1] (b): field 'models' is required." in err
    assert not Agent.objects.exists()


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ("agents: [unclosed", "Not YAML or JSON"),
        ({"agent": []}, 'must hold {"agents": [...]}'),
        ({"agents": [{**RESEARCHER, "default": False}] * 2}, "slug 'researcher' appears twice"),
        ({"agents": [RESEARCHER, {**RESEARCHER, "slug": "other"}]}, "At most one agent may be the default"),
    ],
)
def test_a_file_that_is_not_a_list_of_agents_is_refused(tmp_path, document, named):
    with pytest.raises(CommandError, match=re.escape(named)):
        load(tmp_path, document)
    assert not Agent.objects.exists()


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("agents_load", str(tmp_path / "absent.yaml"))


def test_the_api_lists_the_enabled_agents_in_order(client, tmp_path):
    writer = {"slug": "writer", "name": "Writer", "models": ["google/gemini-3-pro-preview"], "position": 0}
    hidden = {"slug": "hidden", "name": "Hidden", "models": ["openai/gpt-5.1"], "enabled": False}
    load(tmp_path, {"agents": [{**RESEARCHER, "position": 1}, writer, hidden]})

    response = client.get(reverse("conversations:agent_list"))

    assert response.status_code == 200
    assert response.json() == {
        "agents": [
            {
                "slug": "writer",
                "name": "Writer",
                "description": "",
                "models": ["google/gemini-3-pro-preview"],
                "default": False,
            },
            {
                "slug": "researcher",
                "name": "Researcher",
                "description": "Finds sources and cites them.",
                "models": RESEARCHER["models"],
                "default": True,
            },
        ]
    }
    assert "instructions" not in response.content.decode()  # an agent's instructions stay on the server


def test_the_api_asks_for_a_login_when_the_site_requires_one(client, settings):
    settings.CHAT_REQUIRE_LOGIN = True
    response = client.get(reverse("conversations:agent_list"))
    assert response.status_code == 401
    assert response.json()["code"] == "login_required"


def test_the_admin_lists_and_edits_agents_and_refuses_a_bad_one(staff_client, tmp_path):
    """The admin's form in full is tested in test_agent_form.py; here, an agent from a file in it."""
    load(tmp_path, {"agents": [RESEARCHER]})
    agent = Agent.objects.get(slug="researcher")
    changelist = staff_client.get(reverse("admin:conversations_agent_changelist"))
    assert changelist.status_code == 200
    assert "Researcher" in changelist.content.decode()

    form = {
        "slug": "researcher",
        "name": "Researcher",
        "colour": "#000000",
        "no_colour": "on",
        "first_model": "nope/none",
        "mcp_typed": "acme/search@1.2.0",
        "enabled": "on",
        "position": "0",
    }
    change_url = reverse("admin:conversations_agent_change", args=[agent.pk])
    refused = staff_client.post(change_url, form)
    assert refused.status_code == 200  # the form again, with the error
    assert "nope/none is not an enabled model of the catalog." in refused.content.decode()
    assert Agent.objects.get(pk=agent.pk).model_names == RESEARCHER["models"]

    accepted = staff_client.post(change_url, {**form, "first_model": "openai/gpt-5.1"})
    assert accepted.status_code == 302
    assert Agent.objects.get(pk=agent.pk).model_names == ["openai/gpt-5.1"]
    assert Agent.objects.get(pk=agent.pk).mcp_servers == ["acme/search@1.2.0"]


def test_per_model_settings_name_the_agents_models_and_stay_within_the_catalogs_limits():
    from conversations.models import ChatModel

    ChatModel.objects.filter(name="openai/gpt-5.1").update(output_token_limit=1000)
    agent = Agent(slug="a", name="A", model_names=["openai/gpt-5.1"])
    agent.model_settings = {"google/gemini-3-pro-preview": {"temperature": 1}}
    with pytest.raises(ValidationError, match="is not one of the agent's models"):
        agent.full_clean()
    agent.model_settings = {"openai/gpt-5.1": {"temperature": 9}}
    with pytest.raises(ValidationError, match="temperature must be a number from 0 to 2"):
        agent.full_clean()
    agent.model_settings = {"openai/gpt-5.1": {"max_tokens": 5000}}
    with pytest.raises(ValidationError, match="at most 1000"):
        agent.full_clean()
    agent.model_settings = {}
    agent.settings = {"max_tokens": 5000}
    with pytest.raises(ValidationError, match="at most 1000"):
        agent.full_clean()
    agent.settings = {"max_tokens": 800}
    agent.full_clean()
