"""Agents: a name, instructions and models an operator offers users to pick."""

from __future__ import annotations

from django.contrib import admin

from ..models import Agent


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "models_listed", "enabled", "is_default", "position", "updated_at"]
    list_editable = ["enabled", "is_default", "position"]
    list_filter = ["enabled"]
    search_fields = ["name", "slug", "description", "instructions"]
    prepopulated_fields = {"slug": ["name"]}

    @admin.display(description="models")
    def models_listed(self, agent: Agent) -> str:
        """The agent's models as a list (the handoff order), not as JSON."""
        return ", ".join(agent.model_names) or "—"
