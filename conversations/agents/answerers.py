"""Who answers a turn: an agent (instructions, its models and their settings, its MCP servers) or a
plain model, chosen from what the frame asks and what the conversation had, among what is enabled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from ..exceptions import InvalidMcpServer, InvalidSettings, UnknownAgent, UnknownModel
from ..models import Agent, Conversation, MCPServerPreset, ModelChoice
from ..validators import mcp_target_error, mcp_target_is_internal, quoted, setting_error

# What the page's settings panel offers; an agent may set more (top_p).
USER_SETTINGS = ("temperature", "max_tokens", "reasoning_effort", "thinking_budget")


@dataclass(frozen=True, slots=True)
class Answerer:
    """What a reply is asked of: the models (the first answers; any other may take over mid-reply), the
    MCP servers, the settings and instructions sent with them, and the agent they come from (None: a
    plain model)."""

    models: list[str]
    mcp_servers: list[str]
    agent: Agent | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # what is sent: the agent's, then the user's
    model_settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # the agent's, per model
    instructions: str = ""
    # The user's, kept on the conversation (None: an agent that keeps its own; the conversation's stay).
    own_settings: dict[str, Any] | None = None

    @property
    def model(self) -> str:
        return self.models[0]

    @property
    def agent_slug(self) -> str:
        """The agent's slug, "" for a plain model."""
        return self.agent.slug if self.agent else ""

    @property
    def settings_recorded(self) -> dict[str, Any]:
        """The settings as a reply records them: the request's own, and the per-model ones apart."""
        if not self.model_settings:
            return dict(self.settings)
        return {**self.settings, "model_settings": self.model_settings}


def answerer_choose(
    *,
    agent_slug: str | None,
    model: str | None,
    mcp_servers: list[str] | None,
    conversation: Conversation,
    enabled: list[ModelChoice],
    agents: dict[str, Agent],
    settings: dict[str, Any] | None = None,
    withheld: frozenset[str] = frozenset(),
) -> Answerer:
    """Return who answers the next reply of `conversation`: the agent the frame names, else a plain
    model when the frame names one, else the conversation's agent, else (for a conversation with no turn
    yet) the default agent, else the conversation's model or the default model; with the user's own
    `settings` (None: the conversation's) over the agent's.

    `enabled` is the enabled models the owner may use (teams/access), `withheld` the enabled ones they
    may not, `agents` the enabled agents they may name, by slug. Raise UnknownAgent for an agent that is
    not among them; UnknownModel for a model that is not (a withheld one as a missing one, and the
    conversation's own when it is withheld), or for a model asked of an agent that keeps its own;
    InvalidMcpServer and InvalidSettings likewise for MCP servers and settings (or settings beyond a
    model's limits). The default agent is one the owner may use, else none: then the default model if
    they may use it, else the first they may.
    """
    agent = _agent_choose(agent_slug=agent_slug, model=model, conversation=conversation, agents=agents)
    own = conversation.settings if settings is None else settings
    if agent is None:
        chosen = model_resolve(
            requested=model, current=conversation.model, enabled=enabled, withheld=withheld
        )
        servers = mcp_servers_clean(conversation.mcp_servers if mcp_servers is None else mcp_servers)
        own = reply_settings_clean(own, models=[chosen], enabled=enabled, stored=settings is None)
        return Answerer(models=[chosen], mcp_servers=servers, settings=dict(own), own_settings=own)
    names = {choice.name for choice in enabled}
    models = list(agent.model_names)
    if model is not None:
        if not agent.user_may_change_model:
            raise UnknownModel(f"{agent.name} answers with its own models; pick a model without the agent.")
        models = [model, *(name for name in models if name != model)]
    for name in models:
        if name not in names:
            raise UnknownModel(f"{name[:200]!r}, a model of {agent.name}, is not available.")
    servers = list(agent.mcp_servers)
    if mcp_servers:
        if not agent.user_may_change_mcp_servers:
            raise InvalidMcpServer(f"{agent.name} uses its own MCP servers.")
        servers += mcp_servers
    kept: dict[str, Any] | None = None
    if agent.user_may_change_settings:
        kept = reply_settings_clean(own, models=models, enabled=enabled, stored=settings is None)
    elif settings:
        raise InvalidSettings(f"{agent.name} answers with its own settings.")
    return Answerer(
        models=models,
        mcp_servers=mcp_servers_clean(servers),
        agent=agent,
        settings={**agent.settings, **(kept or {})},
        model_settings={
            name: dict(one) for name, one in (agent.model_settings or {}).items() if name in models
        },
        instructions=agent.instructions,
        own_settings=kept,
    )


def reply_settings_clean(
    settings: Any, *, models: list[str], enabled: list[ModelChoice], stored: bool = False
) -> dict[str, Any]:
    """The user's reply settings, checked: known settings in range, and max_tokens within the output
    limit of every model that may write the reply. Raise InvalidSettings; but settings `stored` on the
    conversation (checked when they were set) have max_tokens lowered to a newly picked model's limit."""
    if not settings:
        return {}
    if not isinstance(settings, dict):
        raise InvalidSettings("Settings are an object: temperature, max_tokens, reasoning_effort.")
    problems = [
        problem
        for key, value in settings.items()
        if (problem := _user_setting_error(key)) or (problem := setting_error(key, value))
    ]
    if problems:
        raise InvalidSettings(" ".join(problems))
    limits = {choice.name: choice.output_token_limit for choice in enabled}
    known = [limit for name in models if (limit := limits.get(name))]
    cleaned = dict(settings)
    if "max_tokens" in cleaned and known and cleaned["max_tokens"] > min(known):
        if not stored:
            raise InvalidSettings(f"max_tokens may be at most {min(known)} for this model.")
        cleaned["max_tokens"] = min(known)
    return cleaned


def _user_setting_error(key: str) -> str | None:
    if key in USER_SETTINGS:
        return None
    return f"{str(key)[:40]!r}: a user may set {', '.join(USER_SETTINGS)}."


def agents_needed(*, agent_slug: str | None, model: str | None, conversation: Conversation) -> bool:
    """Whether choosing who answers may need the enabled agents (a query a plain turn spares)."""
    return agent_slug is not None or (
        model is None and (conversation.agent_id is not None or not conversation.model)
    )


def _agent_choose(
    *, agent_slug: str | None, model: str | None, conversation: Conversation, agents: dict[str, Agent]
) -> Agent | None:
    if agent_slug is not None:
        agent = agents.get(agent_slug)
        if agent is None:
            raise UnknownAgent(f"{agent_slug[:64]!r} is not an available agent.")
        return agent
    if model is not None:
        return None
    if conversation.agent_id is not None:
        agent = next((agent for agent in agents.values() if agent.pk == conversation.agent_id), None)
        if agent is None:
            raise UnknownAgent("This conversation's agent is no longer available; pick an agent or a model.")
        return agent
    if not conversation.model:  # no turn yet: the default agent, if the operator named one
        return next((agent for agent in agents.values() if agent.is_default), None)
    return None


def model_resolve(
    *, requested: str | None, current: str, enabled: list[ModelChoice], withheld: frozenset[str] = frozenset()
) -> str:
    """Return the model for the next reply: the one asked for, else the conversation's, else the default,
    among the `enabled` models the owner may use.

    Raise UnknownModel if the one asked for is not among them, if the conversation's is `withheld` from
    the owner (enabled, but not for them: refused rather than quietly changed), or none is enabled.
    """
    names = {choice.name for choice in enabled}
    if requested is not None:
        if requested not in names:
            raise UnknownModel(f"{requested[:200]!r} is not an available model.")
        return requested
    if current in names:
        return current
    if current in withheld:
        raise UnknownModel("This conversation's model is no longer available; pick an agent or a model.")
    if not enabled:
        raise UnknownModel("No model is enabled; an administrator must enable one.")
    return next((choice.name for choice in enabled if choice.is_default), enabled[0].name)


def mcp_servers_clean(servers: list[str]) -> list[str]:
    """Return the MCP servers without duplicates, in order.

    Raise InvalidMcpServer for an entry that is not a slug or https URL, or too many.
    """
    limit = settings.CHAT_MAX_MCP_SERVERS
    cleaned = list(dict.fromkeys(servers))
    if len(cleaned) > limit:
        raise InvalidMcpServer(f"At most {limit} MCP servers per message.")
    for target in cleaned:
        error = mcp_target_error(target)
        if error:
            raise InvalidMcpServer(f"{quoted(target)}: {error}")
    internal = [target for target in cleaned if mcp_target_is_internal(target)]
    if internal:
        # An internal host only when an administrator offers it as a preset (no SSRF by free text).
        allowed = set(
            MCPServerPreset.objects.enabled().filter(target__in=internal).values_list("target", flat=True)
        )
        for target in internal:
            if target not in allowed:
                raise InvalidMcpServer(
                    f"{quoted(target)}: private, loopback and local hosts are not allowed."
                )
    return cleaned
