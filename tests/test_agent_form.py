"""The admin's agent form, through the test client: an agent is built from fields (models picked from the
catalog in order, settings each in its own field, a colour, MCP servers from the presets or typed), stored
in the shapes the rest of the code reads, and every mistake is told in words next to its field."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from django.urls import reverse

from conversations.agents.answerers import answerer_choose
from conversations.models import Agent, ChatModel, Conversation, MCPServerPreset

pytestmark = pytest.mark.django_db

OPUS = "anthropic/claude-opus-4-5-20251101"
GEMINI = "google/gemini-3-pro-preview"
ADD_URL = reverse("admin:conversations_agent_add")


def change_url(agent: Agent) -> str:
    return reverse("admin:conversations_agent_change", args=[agent.pk])


def form_data(**changes: Any) -> dict[str, Any]:
    """What the add form posts for a plain agent, blank rows and all, with `changes` over it."""
    data = {
        "name": "Researcher",
        "slug": "researcher",
        "description": "Finds sources and cites them.",
        "colour": "#000000",
        "no_colour": "on",
        "instructions": "Cite every claim.",
        "first_model": "openai/gpt-5.1",
        **{f"handoff_models_{row}": "" for row in range(7)},
        "temperature": "",
        "top_p": "",
        "max_tokens": "",
        "reasoning_effort": "",
        "model_settings": "",
        "mcp_typed": "",
        "enabled": "on",
        "position": "0",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def errors_of(page: str, field: str) -> list[str]:
    """The error messages the admin shows in the row of `field` (and only there), as plain text."""
    start = page.index(f' field-{field}"')
    end = page.find('class="form-row', start)
    row = page[start : end if end != -1 else len(page)]
    lists = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', row, re.S)
    items = [item for found in lists for item in re.findall(r"<li>(.*?)</li>", found, re.S)]
    return [html.unescape(re.sub(r"<[^>]+>", "", item)).strip() for item in items]


def test_an_agent_built_in_the_form_is_stored_as_the_chat_reads_it(staff_client):
    MCPServerPreset.objects.create(label="Search", target="acme/search", position=0)
    MCPServerPreset.objects.create(label="Files", target="acme/files@2", position=1)
    ChatModel.objects.filter(name=OPUS).update(output_token_limit=64000)

    page = staff_client.get(ADD_URL).content.decode()
    assert 'type="color"' in page
    assert 'name="no_colour"' in page
    assert '<option value="openai/gpt-5.1">GPT-5.1 (openai/gpt-5.1)</option>' in page
    assert f'data-output-limit="64000">Opus 4.5 ({OPUS})</option>' in page
    assert 'name="temperature"' in page
    assert 'min="0.0" max="2.0"' in page
    assert "Search (acme/search)" in page

    response = staff_client.post(
        ADD_URL,
        form_data(
            colour="#7C3AED",
            no_colour=None,
            handoff_models_0=GEMINI,
            handoff_models_2=OPUS,  # a blank row between is no model
            temperature="0.3",
            max_tokens="2000",
            reasoning_effort="high",
            model_settings=json.dumps({OPUS: {"reasoning_effort": "low"}}),
            mcp_presets=["acme/files@2"],
            mcp_typed="acme/web@1.0\n\nhttps://mcp.example.com/sse\n",
            is_default="on",
        ),
    )

    assert response.status_code == 302, errors_of(response.content.decode(), "first_model")
    agent = Agent.objects.get(slug="researcher")
    assert agent.model_names == ["openai/gpt-5.1", GEMINI, OPUS]
    assert agent.settings == {"temperature": 0.3, "max_tokens": 2000, "reasoning_effort": "high"}
    assert isinstance(agent.settings["max_tokens"], int)
    assert agent.model_settings == {OPUS: {"reasoning_effort": "low"}}
    assert agent.mcp_servers == ["acme/files@2", "acme/web@1.0", "https://mcp.example.com/sse"]
    assert (agent.colour, agent.is_default, agent.enabled) == ("#7c3aed", True, True)

    # What a reply is asked of: the models in order, the settings and servers as the form gave them.
    conversation = Conversation.objects.create(session_id="form1", owner_key="k", model="")
    answerer = answerer_choose(
        agent_slug="researcher",
        model=None,
        mcp_servers=None,
        conversation=conversation,
        enabled=ChatModel.objects.enabled_choices(),
        agents={"researcher": agent},
    )
    assert answerer.models == ["openai/gpt-5.1", GEMINI, OPUS]
    assert answerer.settings == {"temperature": 0.3, "max_tokens": 2000, "reasoning_effort": "high"}
    assert answerer.model_settings == {OPUS: {"reasoning_effort": "low"}}
    assert answerer.mcp_servers == ["acme/files@2", "acme/web@1.0", "https://mcp.example.com/sse"]
    listed = staff_client.get(reverse("conversations:agent_list")).json()["agents"]
    assert [(a["slug"], a["models"]) for a in listed] == [("researcher", agent.model_names)]


def test_editing_shows_the_stored_agent_in_its_fields_and_blank_fields_are_not_stored(staff_client):
    MCPServerPreset.objects.create(label="Search", target="acme/search")
    agent = Agent.objects.create(
        slug="writer",
        name="Writer",
        model_names=[OPUS, "openai/gpt-5.1"],
        settings={"temperature": 0.7, "top_p": 0.9, "reasoning_effort": "low"},
        mcp_servers=["https://mcp.example.com/a", "acme/search"],
        colour="#112233",
    )

    page = staff_client.get(change_url(agent)).content.decode()
    assert f'<option value="{OPUS}" selected>' in page
    assert re.search(r'name="handoff_models_0"[^>]*>.*?<option value="openai/gpt-5.1" selected>', page, re.S)
    assert 'name="temperature" value="0.7"' in page
    assert 'name="top_p" value="0.9"' in page
    assert '<option value="low" selected>Low</option>' in page
    assert 'value="acme/search" id="id_mcp_presets_0" checked' in page
    assert re.search(r'name="mcp_typed"[^>]*>\s*https://mcp.example.com/a</textarea>', page)
    assert 'type="color" name="colour" value="#112233"' in page
    assert 'name="no_colour"' in page
    assert 'id="id_no_colour" checked' not in page

    # Top p and the effort cleared, the preset unticked, no colour: none of them is stored any more.
    response = staff_client.post(
        change_url(agent),
        form_data(
            name="Writer",
            slug="writer",
            first_model=OPUS,
            handoff_models_0="openai/gpt-5.1",
            temperature="0.7",
            mcp_typed="https://mcp.example.com/a",
            colour="#112233",
        ),
    )
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.model_names == [OPUS, "openai/gpt-5.1"]
    assert agent.settings == {"temperature": 0.7}
    assert agent.mcp_servers == ["https://mcp.example.com/a"]
    assert agent.colour == ""


def test_each_mistake_is_told_in_words_next_to_its_field_and_nothing_is_stored(staff_client):
    agent = Agent.objects.create(slug="kept", name="Kept", model_names=["openai/gpt-5.1"])
    response = staff_client.post(
        change_url(agent),
        form_data(
            name="Kept",
            slug="kept",
            handoff_models_0=GEMINI,
            handoff_models_1=GEMINI,
            temperature="3",
            top_p="-0.5",
            max_tokens="1.5",
            reasoning_effort="extreme",
            model_settings='{"openai/gpt-5.1": {"temperature": 0.2,}}',
            mcp_typed="acme/search\nhttp://10.0.0.1/mcp\nhttps://user:pw@mcp.example.com/",
            colour="red",
            no_colour=None,
        ),
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Enter a valid JSON" not in page
    assert errors_of(page, "handoff_models") == [
        f"{GEMINI} is picked twice: a model may be in the list once."
    ]
    assert errors_of(page, "temperature") == [
        "Temperature must be a number from 0 to 2 (blank: the model's own default)."
    ]
    assert errors_of(page, "top_p") == [
        "Top p must be a number from 0 to 1 (blank: the model's own default)."
    ]
    assert errors_of(page, "max_tokens") == [
        "Max tokens must be a whole number from 1 to 1,000,000 (blank: the model's own default)."
    ]
    assert errors_of(page, "reasoning_effort") == [
        "Select a valid choice. extreme is not one of the available choices."
    ]
    (json_error,) = errors_of(page, "model_settings")
    assert json_error.startswith("This is not JSON: ")
    assert "line 1, column" in json_error
    assert errors_of(page, "mcp_typed") == [
        "Line 2 (http://10.0.0.1/mcp): An MCP server must be a slug like org/name or an https:// URL.",
        "Line 3 (https://user:pw@mcp.example.com/): An MCP server URL must not carry credentials.",
    ]
    assert errors_of(page, "colour") == ["Pick a colour (as #rrggbb, such as #7c3aed), or tick No colour."]
    assert errors_of(page, "first_model") == []
    agent.refresh_from_db()
    assert (agent.model_names, agent.settings, agent.mcp_servers) == (["openai/gpt-5.1"], {}, [])


def test_a_model_the_catalog_lost_stays_shown_and_is_named_not_dropped(staff_client):
    agent = Agent.objects.create(slug="old", name="Old", model_names=["openai/gpt-5.1", "retired/model-1"])
    ChatModel.objects.filter(name=GEMINI).update(enabled=False)

    page = staff_client.get(change_url(agent)).content.decode()
    assert '<option value="retired/model-1" selected>retired/model-1 (not in the catalog)</option>' in page
    assert "Not in the model catalog: retired/model-1." in page
    assert f'value="{GEMINI}"' not in page  # a disabled model is not offered to a new pick

    kept = staff_client.post(
        change_url(agent), form_data(name="Old", slug="old", handoff_models_0="retired/model-1")
    )
    assert errors_of(kept.content.decode(), "handoff_models") == [
        "retired/model-1 is not in the model catalog: add it under Chat models (or sync the catalog), or "
        "pick another model."
    ]
    offered_not = staff_client.post(change_url(agent), form_data(name="Old", slug="old", first_model=GEMINI))
    assert errors_of(offered_not.content.decode(), "first_model") == [
        f"{GEMINI} is not an enabled model of the catalog."
    ]
    assert Agent.objects.get(pk=agent.pk).model_names == ["openai/gpt-5.1", "retired/model-1"]

    # A model the agent has that was disabled since stays allowed, as the agent's own check allows it.
    ChatModel.objects.filter(name=OPUS).update(enabled=False)
    agent.model_names = [OPUS]
    agent.save()
    page = staff_client.get(change_url(agent)).content.decode()
    assert f'<option value="{OPUS}" selected>{OPUS} (disabled in the catalog)</option>' in page
    saved = staff_client.post(change_url(agent), form_data(name="Old", slug="old", first_model=OPUS))
    assert saved.status_code == 302


def test_max_tokens_is_held_to_the_picked_models_output_limits(staff_client):
    ChatModel.objects.filter(name=OPUS).update(output_token_limit=8000)
    ChatModel.objects.filter(name="openai/gpt-5.1").update(output_token_limit=128000)
    agent = Agent.objects.create(slug="capped", name="Capped", model_names=["openai/gpt-5.1", OPUS])

    page = staff_client.get(change_url(agent)).content.decode()
    assert re.search(r'name="max_tokens"[^>]* max="8000"', page)
    assert "now 8,000" in page

    refused = staff_client.post(
        change_url(agent),
        form_data(name="Capped", slug="capped", handoff_models_0=OPUS, max_tokens="20000"),
    )
    assert errors_of(refused.content.decode(), "max_tokens") == [
        f"At most 8,000 for these models: the catalog's output limit of {OPUS} is lower than 20,000."
    ]
    # Per model, over the limit: the agent's own check, told under the advanced field.
    per_model = staff_client.post(
        change_url(agent),
        form_data(
            name="Capped",
            slug="capped",
            handoff_models_0=OPUS,
            model_settings=json.dumps({OPUS: {"max_tokens": 9000}}),
        ),
    )
    assert errors_of(per_model.content.decode(), "model_settings") == [
        f"{OPUS}: max_tokens may be at most 8000 (the catalog's limit)."
    ]
    shape = staff_client.post(
        change_url(agent), form_data(name="Capped", slug="capped", model_settings='["not", "an object"]')
    )
    assert errors_of(shape.content.decode(), "model_settings")[0].startswith(
        "Write an object of settings by model id"
    )
    accepted = staff_client.post(
        change_url(agent), form_data(name="Capped", slug="capped", handoff_models_0=OPUS, max_tokens="8000")
    )
    assert accepted.status_code == 302
    assert Agent.objects.get(pk=agent.pk).settings == {"max_tokens": 8000}


def test_a_new_agent_needs_a_first_model(staff_client):
    response = staff_client.post(ADD_URL, form_data(first_model=""))
    assert response.status_code == 200
    assert errors_of(response.content.decode(), "first_model") == ["Pick the model that answers first."]
    assert not Agent.objects.exists()


def test_a_preset_the_rules_now_refuse_is_named_under_the_presets(staff_client):
    """A preset stored before a rule it breaks (the admin's own form would refuse it now): the agent's
    own check refuses it, and the form says so under the presets, not in a corner."""
    MCPServerPreset.objects.create(label="Old", target="http://old.example.com/mcp")
    response = staff_client.post(ADD_URL, form_data(mcp_presets=["http://old.example.com/mcp"]))
    assert response.status_code == 200
    assert errors_of(response.content.decode(), "mcp_presets") == [
        "'http://old.example.com/mcp': An MCP server must be a slug like org/name or an https:// URL."
    ]
    assert not Agent.objects.exists()


def test_the_list_still_edits_enabled_default_and_position_in_place(staff_client):
    agent = Agent.objects.create(slug="listed", name="Listed", model_names=["openai/gpt-5.1"])
    response = staff_client.post(
        reverse("admin:conversations_agent_changelist"),
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(agent.pk),
            "form-0-is_default": "on",
            "form-0-position": "3",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    agent.refresh_from_db()
    assert (agent.enabled, agent.is_default, agent.position) == (False, True, 3)
    assert agent.model_names == ["openai/gpt-5.1"]
