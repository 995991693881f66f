"""What a fresh install still lacks, and sign-ups waiting for approval, for the admin's home page: each a
sentence and where to act."""

from __future__ import annotations

from django.urls import reverse

from ..accounts.signups import signups_awaiting_count
from ..models import Agent, ChatModel, MCPServerPreset


def first_steps() -> list[dict[str, str]]:
    """The steps an operator has not taken yet, in the order they matter; [] once all are done."""
    steps = []
    if awaiting := signups_awaiting_count():
        steps.append(
            {
                "text": f"{awaiting} sign-up(s) wait for your approval: they cannot sign in until then.",
                "action": "Review them",
                "url": reverse("admin:conversations_signup_changelist") + "?awaiting=yes",
            }
        )
    if not ChatModel.objects.enabled().exists():
        steps.append(
            {
                "text": "No chat model is enabled: nobody can send a message.",
                "action": "Enable a model",
                "url": reverse("admin:conversations_chatmodel_changelist"),
            }
        )
    if not MCPServerPreset.objects.exists():
        steps.append(
            {
                "text": "No MCP server presets yet: the page offers none to pick until you add one.",
                "action": "Add an MCP server preset",
                "url": reverse("admin:conversations_mcpserverpreset_add"),
            }
        )
    if not Agent.objects.exists():
        steps.append(
            {
                "text": "No agents yet: people pick a plain model. Add one here, or load a file of them"
                " with manage.py agents_load.",
                "action": "Add an agent",
                "url": reverse("admin:conversations_agent_add"),
            }
        )
    return steps
