"""Agents: a name, instructions and models an operator offers users to pick, built in a form of fields
(see agent_form.py), not JSON."""

from __future__ import annotations

from django.contrib import admin

from ..models import Agent
from .agent_form import AgentForm
from .groups import GroupsAdmin
from .list_editable import LabelledListEditableAdmin


@admin.register(Agent)
class AgentAdmin(LabelledListEditableAdmin, GroupsAdmin):
    form = AgentForm
    list_display = [
        "name",
        "slug",
        "models_listed",
        "who_may_use",
        "enabled",
        "is_default",
        "position",
        "updated_at",
    ]
    list_editable = ["enabled", "is_default", "position"]
    list_filter = ["enabled", "groups"]
    search_fields = ["name", "slug", "description", "instructions"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["name", "slug", "description", "colour", "no_colour", "instructions"]}),
        (
            "Models",
            {
                "description": "The first model answers; it may hand the reply over to the handoff models.",
                "fields": ["first_model", "handoff_models", "user_may_change_model"],
            },
        ),
        (
            "Settings",
            {
                "description": "For every model of the agent. A blank field is not sent: the model's "
                "own default applies.",
                "fields": [
                    "temperature",
                    "top_p",
                    "max_tokens",
                    "reasoning_effort",
                    "model_settings",
                    "user_may_change_settings",
                ],
            },
        ),
        (
            "MCP servers",
            {"fields": ["mcp_presets", "mcp_typed", "user_may_change_mcp_servers"]},
        ),
        ("In the picker", {"fields": ["enabled", "is_default", "position"]}),
        (
            "Who may use it",
            {
                "description": "Members of any of these groups, superusers included; none: everyone.",
                "fields": ["groups"],
            },
        ),
    ]

    @admin.display(description="models")
    def models_listed(self, agent: Agent) -> str:
        """The agent's models as a list (the handoff order), not as JSON."""
        return ", ".join(agent.model_names) or "—"
