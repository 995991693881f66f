"""Agents defined as code: a YAML or JSON file of agent definitions, created or updated by slug.

`manage.py agents_load FILE` reads `{"agents": [{"slug", "name", "description", "instructions",
"models", "settings", "model_settings", "mcp_servers", "default", ...}]}`. The whole file loads or
nothing does: an entry that breaks a rule is named, with its field, and no agent changes.
"""

from __future__ import annotations

from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from ..models import Agent

# A file's keys and the Agent fields they set; slug, name and models are required.
FILE_FIELDS = {
    "slug": "slug",
    "name": "name",
    "description": "description",
    "colour": "colour",
    "instructions": "instructions",
    "models": "model_names",
    "settings": "settings",
    "model_settings": "model_settings",
    "mcp_servers": "mcp_servers",
    "user_may_change_model": "user_may_change_model",
    "user_may_change_mcp_servers": "user_may_change_mcp_servers",
    "user_may_change_settings": "user_may_change_settings",
    "enabled": "enabled",
    "default": "is_default",
    "position": "position",
}
REQUIRED_KEYS = ("slug", "name", "models")
FILE_KEY_OF_FIELD = {field: key for key, field in FILE_FIELDS.items()}


class AgentFileError(Exception):
    """A file of agents that cannot load; the message names the entry and the field."""


def agents_parse(text: str) -> list[dict[str, Any]]:
    """Return the entries of a file's text (YAML, of which JSON is a part). Raise AgentFileError when it
    is not `{"agents": [{...}, ...]}`."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgentFileError(f"Not YAML or JSON: {exc}") from exc
    agents = document.get("agents") if isinstance(document, dict) else None
    if not isinstance(agents, list) or not all(isinstance(entry, dict) for entry in agents):
        raise AgentFileError('The file must hold {"agents": [...]}, a list of objects.')
    return agents


@transaction.atomic
def agents_load(entries: list[dict[str, Any]]) -> tuple[int, int]:
    """Create or update an agent per entry, by slug; return how many were created and updated.

    Raise AgentFileError naming the first entry (and field) that breaks a rule: unknown keys, a missing
    slug, name or models, a model not in the catalog, a setting out of range, an MCP server that is not
    a slug or https URL, a slug twice, or more than one default. Nothing is stored then.
    """
    created = updated = 0
    seen: set[str] = set()
    defaults = [entry.get("slug") for entry in entries if entry.get("default") is True]
    if len(defaults) > 1:
        raise AgentFileError(f"At most one agent may be the default; the file has {len(defaults)}.")
    for index, entry in enumerate(entries):
        label = f"agents[{index}]" + (f" ({entry['slug']})" if isinstance(entry.get("slug"), str) else "")
        unknown = sorted(set(entry) - set(FILE_FIELDS), key=str)
        if unknown:
            raise AgentFileError(f"{label}: unknown key {unknown[0]!r} (keys: {', '.join(FILE_FIELDS)}).")
        missing = [key for key in REQUIRED_KEYS if key not in entry]
        if missing:
            raise AgentFileError(f"{label}: field {missing[0]!r} is required.")
        slug = entry["slug"]
        if not isinstance(slug, str):
            raise AgentFileError(f"{label}, field 'slug': a text like 'research-assistant'.")
        if slug in seen:
            raise AgentFileError(f"{label}: slug {slug!r} appears twice in the file.")
        seen.add(slug)
        agent = Agent.objects.filter(slug=slug).first()
        is_new = agent is None
        agent = agent or Agent(slug=slug)
        for key, value in entry.items():
            setattr(agent, FILE_FIELDS[key], value)
        _agent_check(agent, label)
        agent.save()
        created, updated = created + is_new, updated + (not is_new)
    return created, updated


def _agent_check(agent: Agent, label: str) -> None:
    try:
        agent.full_clean()
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        key = FILE_KEY_OF_FIELD.get(field, field)
        raise AgentFileError(f"{label}, field {key!r}: {' '.join(messages)}") from exc
    except (TypeError, ValueError) as exc:  # a value of the wrong type for its column (e.g. a list as a name)
        raise AgentFileError(f"{label}: {exc}") from exc
