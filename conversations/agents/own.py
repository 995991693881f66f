"""A signed-in user's own agents ("My agents"): built, changed and deleted by their owner alone, held to
the operator's agents' rules (agent_definition_errors, the catalog's limits, MCP servers a turn would
take) with caps of their own, and offered to that owner's turns beside the operator's agents.

An own agent keeps its settings, models and MCP servers (a user who wants others edits the agent); its
slug is `my:` and a random token, so it never meets an operator's slug, and says nothing of its owner."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from ..exceptions import InvalidAgent, InvalidMcpServer, NotFound, TooManyAgents
from ..models import Agent, ChatModel
from ..models.catalog import OWN_AGENT_SLUG_PREFIX
from ..protocol import mcp_servers_parse
from ..teams.access import Reach, restricted_marked, usable
from ..text import text_storable
from ..validators import AGENT_SETTING_RANGES, REASONING_EFFORTS
from .answerers import mcp_servers_clean

# What a request may set; the longest name and description (the instructions' is a setting).
FIELDS = ("name", "description", "instructions", "models", "settings", "mcp_servers")
NAME_MAX_CHARS = 100  # Agent.name's column
DESCRIPTION_MAX_CHARS = 300
SETTINGS_NAMES = len(AGENT_SETTING_RANGES) + 1  # and reasoning_effort
SHAPE = 'Send a JSON object: {"name", "description", "instructions", "models", "settings", "mcp_servers"}.'
# A random slug, not the name: renaming keeps it, so conversations and replies still name the agent.
SLUG_TOKEN_BYTES = 8
# The API's names of the model's fields where they differ.
API_NAMES = {"model_names": "models"}


def own_agents_on() -> bool:
    """Whether the operator lets users build agents (CHAT_USER_AGENTS)."""
    return bool(settings.CHAT_USER_AGENTS)


def own_agents_listed(user_id: int) -> list[dict[str, Any]]:
    """The user's own agents, by name, whole (their owner may read their instructions)."""
    return [own_agent_as_dict(agent) for agent in Agent.owned.filter(owner_id=user_id).order_by("name", "pk")]


def own_agents_for_page(user_id: int | None) -> list[dict[str, Any]]:
    """The user's own agents as the picker lists them (none for a visitor, or with CHAT_USER_AGENTS off)."""
    if user_id is None or not own_agents_on():
        return []
    return [
        {
            "slug": agent.slug,
            "name": agent.name,
            "description": agent.description,
            "models": agent.model_names,
            "default": False,
            "settings_editable": False,
            "colour": "",
        }
        for agent in Agent.owned.filter(owner_id=user_id).order_by("name", "pk")
    ]


def own_agent_as_dict(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.pk,
        "slug": agent.slug,
        "name": agent.name,
        "description": agent.description,
        "instructions": agent.instructions,
        "models": agent.model_names,
        "settings": agent.settings,
        "mcp_servers": agent.mcp_servers,
        "updated_at": agent.updated_at.isoformat(),
    }


def agents_offered(user_ids: set[int | None]) -> dict[int | None, dict[str, Agent]]:
    """The enabled agents a batch of turns may name, by slug, for each of these owners (None: an
    anonymous one): the operator's they may use (teams/access), then their own (none with
    CHAT_USER_AGENTS off). One query, and one more when an agent is limited to groups."""
    signed_in = {user_id for user_id in user_ids if user_id is not None}
    mine = Q(owner_id__in=signed_in) if signed_in and own_agents_on() else Q(pk__in=[])
    rows = restricted_marked(Agent._base_manager.filter(Q(owner__isnull=True) | mine, enabled=True))
    rows = list(rows.order_by("position", "name"))
    reach = Reach.read(Agent, (agent.pk for agent in rows if agent.restricted), user_ids)
    operators = [agent for agent in rows if agent.owner_id is None]
    own: dict[int, list[Agent]] = {}
    for agent in rows:
        if agent.owner_id is not None:
            own.setdefault(agent.owner_id, []).append(agent)
    return {
        user_id: {
            **{a.slug: a for a in operators if reach.allows(a.pk, a.restricted, user_id)},
            **{a.slug: a for a in own.get(user_id, [])},  # theirs beside them, never another's
        }
        for user_id in user_ids
    }


@transaction.atomic
def own_agent_create(user_id: int, data: object) -> dict[str, Any]:
    """Store a new agent of the user's from `data` (see FIELDS); raise InvalidAgent naming the field at
    fault, or TooManyAgents past CHAT_USER_AGENTS_MAX."""
    fields = _fields_parse(user_id, data)
    # The user's row is locked so two requests at once cannot both take the last place.
    get_user_model()._default_manager.select_for_update().filter(pk=user_id).exists()
    limit = settings.CHAT_USER_AGENTS_MAX
    if Agent.owned.filter(owner_id=user_id).count() >= limit:
        raise TooManyAgents(f"You may keep {limit} agents; delete one to build another.")
    agent = Agent(owner_id=user_id, slug=OWN_AGENT_SLUG_PREFIX + secrets.token_hex(SLUG_TOKEN_BYTES))
    _agent_fill(agent, fields)
    return own_agent_as_dict(agent)


@transaction.atomic
def own_agent_update(user_id: int, agent_id: int, data: object) -> dict[str, Any]:
    """Replace the fields of one of the user's agents with `data`; raise NotFound for any agent that is
    not theirs, InvalidAgent as creating does."""
    fields = _fields_parse(user_id, data)
    agent = Agent.owned.select_for_update().filter(owner_id=user_id, pk=agent_id).first()
    if agent is None:
        raise NotFound()
    _agent_fill(agent, fields)
    return own_agent_as_dict(agent)


def own_agent_delete(user_id: int, agent_id: int) -> bool:
    """Delete one of the user's agents (its conversations go on with their model); False when it is not
    theirs. The replies it wrote keep its slug."""
    deleted, _ = Agent.owned.filter(owner_id=user_id, pk=agent_id).delete()
    return bool(deleted)


def _agent_fill(agent: Agent, fields: dict[str, Any]) -> None:
    """Set the agent's fields, check them under the operator's agents' rules, and save it."""
    agent.name = fields["name"]
    agent.description = fields["description"]
    agent.instructions = fields["instructions"]
    agent.model_names = fields["models"]
    agent.settings = fields["settings"]
    agent.mcp_servers = fields["mcp_servers"]
    try:
        agent.full_clean(exclude=["slug"])  # made here; an operator's slug rule has no colon
    except ValidationError as exc:
        problems = [
            f"{API_NAMES.get(field, field)}: {' '.join(messages)}"
            for field, messages in exc.message_dict.items()
        ]
        raise InvalidAgent(" ".join(problems)) from exc
    agent.save()


def _fields_parse(user_id: int, data: object) -> dict[str, Any]:
    """The request's fields, of the right types and within their caps, its models among those the user
    may use; the values themselves are the model's check (`Agent.clean`). Bounded work: nothing is read
    past the first fault."""
    if not isinstance(data, dict):
        raise InvalidAgent(SHAPE)
    unknown = [key for key in data if key not in FIELDS]
    if unknown:
        raise InvalidAgent(f"{str(unknown[0])[:40]!r} is not a field of an agent. {SHAPE}")
    name = _text(data, "name", NAME_MAX_CHARS).strip()
    if not name:
        raise InvalidAgent("name: an agent needs a name.")
    models = data.get("models", [])
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise InvalidAgent("models: one or more model ids; the first answers, the others may take over.")
    offered = {choice.name for choice in usable(ChatModel.objects.all(), user_id).enabled_choices()}
    missing = [model for model in models if model not in offered]
    if missing:
        raise InvalidAgent(f"models: {missing[0][:200]!r} is not a model this server offers.")
    chosen = data.get("settings") or {}
    if not isinstance(chosen, dict) or len(chosen) > SETTINGS_NAMES:
        raise InvalidAgent(
            f"settings: an object of temperature, top_p, max_tokens, reasoning_effort "
            f"({', '.join(REASONING_EFFORTS)})."
        )
    try:
        # A frame's check (strings, no control characters), then a turn's, so a saved agent never
        # fails at its turn.
        servers = mcp_servers_parse(data.get("mcp_servers") or [])
        servers = mcp_servers_clean([server.strip() for server in servers if server.strip()])
    except InvalidMcpServer as exc:
        raise InvalidAgent(f"mcp_servers: {exc.message}") from exc
    return {
        "name": name,
        "description": _text(data, "description", DESCRIPTION_MAX_CHARS).strip(),
        "instructions": _text(data, "instructions", settings.CHAT_USER_AGENT_INSTRUCTIONS_CHARS),
        "models": [text_storable(model) for model in models],
        "settings": chosen,  # storable once checked: known names, numbers or a reasoning effort
        "mcp_servers": servers,
    }


def _text(data: dict[str, Any], field: str, limit: int) -> str:
    value = data.get(field, "")
    if not isinstance(value, str):
        raise InvalidAgent(f"{field}: a text.")
    if len(value) > limit:
        raise InvalidAgent(f"{field}: at most {limit} characters.")
    return text_storable(value)
