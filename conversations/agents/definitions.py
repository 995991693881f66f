"""Agents defined as code: a YAML or JSON file of agent definitions, created or updated by slug.

`manage.py agents_load FILE` reads `{"agents": [{"slug", "name", "description", "instructions",
"models", "settings", "model_settings", "mcp_servers", "default", "groups", ...}]}`. The whole file
loads or nothing does: every rule an entry breaks is named, with the entry and the field, all at once,
and no agent changes.

`groups` names the groups whose members alone may use the agent (teams/access; `[]`: everyone; left
out: as it was). A group the database lacks is created, empty: groups may come from an identity
provider at a member's first sign-in, after the file loaded.
"""

from __future__ import annotations

from typing import Any

import yaml
from django.contrib.auth.models import Group
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
    "groups": "groups",  # a many-to-many: set after the agent is saved
}
REQUIRED_KEYS = ("slug", "name", "models")
FILE_KEY_OF_FIELD = {field: key for key, field in FILE_FIELDS.items()}
# An entry's problems are told in the order of the file's keys.
FIELD_ORDER = {field: index for index, field in enumerate(FILE_FIELDS.values())}


class AgentFileError(Exception):
    """A file of agents that cannot load: every problem found in it, each naming its entry and field."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


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

    Every entry is checked before any is stored. Raise AgentFileError with every problem of the file,
    each naming its entry (index and slug) and field: unknown keys, a missing slug, name or models, a
    model not in the catalog, a setting out of range, an MCP server that is not a slug or https URL, a
    slug twice, more than one default. Nothing is stored then.
    """
    problems: list[str] = []
    defaults = [entry.get("slug") for entry in entries if entry.get("default") is True]
    if len(defaults) > 1:
        problems.append(f"At most one agent may be the default; the file has {len(defaults)}.")
    seen: set[str] = set()
    checked: list[tuple[Agent, bool, list[str] | None]] = []
    for index, entry in enumerate(entries):
        agent, entry_problems = _entry_check(index, entry, seen)
        problems += entry_problems
        if not entry_problems:
            checked.append((agent, agent._state.adding, entry.get("groups")))
    if problems:
        raise AgentFileError(problems)
    for agent, _, groups in checked:
        agent.save()
        if groups is not None:
            agent.groups.set(_groups_named(groups))
    created = sum(is_new for _, is_new, _ in checked)
    return created, len(checked) - created


def _groups_named(names: list[str]) -> list[Group]:
    """The groups of these names, those the database lacks created."""
    return [Group.objects.get_or_create(name=name)[0] for name in dict.fromkeys(names)]


def _entry_check(index: int, entry: dict[str, Any], seen: set[str]) -> tuple[Agent, list[str]]:
    """The agent an entry makes (new, or the stored one of its slug, changed), and every problem of it."""
    slug = entry.get("slug")
    label = f"agents[{index}]" + (f" ({slug})" if isinstance(slug, str) else "")
    problems: list[str] = []
    unknown = sorted(set(entry) - set(FILE_FIELDS), key=str)
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        problems.append(
            f"{label}: unknown key{'s' if len(unknown) > 1 else ''} {names} (keys: {', '.join(FILE_FIELDS)})."
        )
    missing = [key for key in REQUIRED_KEYS if key not in entry]
    problems += [f"{label}: field {key!r} is required." for key in missing]
    if "slug" in entry and not isinstance(slug, str):
        problems.append(f"{label}, field 'slug': a text like 'research-assistant'.")
        missing.append("slug")  # nothing more to say about it
    elif isinstance(slug, str) and slug in seen:
        problems.append(f"{label}: slug {slug!r} appears twice in the file.")
    elif isinstance(slug, str):
        seen.add(slug)
    agent = (Agent.objects.filter(slug=slug).first() if isinstance(slug, str) else None) or Agent()
    for key, value in entry.items():
        if key in FILE_FIELDS and key not in ("slug", "groups"):
            setattr(agent, FILE_FIELDS[key], value)
    if "groups" in entry:
        problems += _groups_problems(entry["groups"], label)
    if isinstance(slug, str):
        agent.slug = slug
    skipped = {FILE_FIELDS[key] for key in missing}  # said already: "field ... is required"
    problems += _agent_problems(agent, label, skipped)
    return agent, problems


def _groups_problems(groups: Any, label: str) -> list[str]:
    """What is wrong with an entry's `groups`: it is a list of group names, each one Group.name holds."""
    longest = Group._meta.get_field("name").max_length
    if not isinstance(groups, list) or not all(
        isinstance(name, str) and name.strip() == name and 0 < len(name) <= longest for name in groups
    ):
        return [
            f"{label}, field 'groups': a list of group names (each 1 to {longest} characters, "
            "no spaces around it), e.g. [research, legal]; [] for everyone."
        ]
    return []


def _agent_problems(agent: Agent, label: str, skipped: set[str]) -> list[str]:
    """Every field of `agent` that breaks a rule, as lines naming the entry and the file's key."""
    try:
        # The models are the agent's own check (a list of ids, in the catalog), said once, in its words.
        agent.full_clean(exclude={*skipped, "model_names"})
    except ValidationError as exc:
        by_field = sorted(exc.message_dict.items(), key=lambda item: FIELD_ORDER.get(item[0], 99))
        return [
            f"{label}, field {FILE_KEY_OF_FIELD.get(field, field)!r}: {' '.join(messages)}"
            for field, messages in by_field
            if field not in skipped
        ]
    except (TypeError, ValueError) as exc:  # a value of the wrong type for its column (e.g. a list as a name)
        return [f"{label}: {exc}"]
    return []
