"""The agents files the README and docs/agents.md show load as they are, on a fresh install's models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conversations.agents.definitions import agents_load, agents_parse
from conversations.models import Agent

ROOT = Path(__file__).resolve().parent.parent


def yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", path.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


@pytest.mark.django_db
@pytest.mark.parametrize("document", ["README.md", "docs/agents.md"])
def test_the_agents_example_loads(document: str) -> None:
    (example,) = yaml_blocks(ROOT / document)
    entries = agents_parse(example)
    assert agents_load(entries) == (len(entries), 0)
    default = Agent.objects.get(is_default=True)
    assert default.slug == next(entry["slug"] for entry in entries if entry.get("default"))
