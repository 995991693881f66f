"""What a key may use, as /v1/models lists it: the operator's enabled agents (by slug) and the enabled
models (by id) the key's user may use (teams/access), and the user's own enabled agents, narrowed to
the key's scope when it has one. Read on every request: a user who leaves a group loses what it gave
at once, through every key, scoped or not."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from ..agents.own import own_agents_on
from ..models import Agent, ApiKey, ChatModel
from ..teams.access import usable


class Offer(NamedTuple):
    """One thing a key may name: `id` (an agent's slug or a model's id), `created` (seconds since the
    epoch: an agent's last change, a model's last sync from the catalog, 0 before any) and `owned_by`."""

    id: str
    created: int
    owned_by: str
    agent: bool = False  # an agent's slug, not a model's id


def key_offers(row: ApiKey) -> list[Offer]:
    """Agents first (the operator's, then the user's own), then models, each in the admin's order, within
    the key's scope."""
    offers = [
        Offer(agent.slug, _seconds(agent.updated_at), "operator", agent=True)
        for agent in usable(Agent.objects.enabled(), row.user_id)
    ]
    if own_agents_on():
        own = Agent.owned.enabled().filter(owner_id=row.user_id)
        offers += [Offer(agent.slug, _seconds(agent.updated_at), "user", agent=True) for agent in own]
    offers += [
        Offer(model.name, _seconds(model.synced_at), _provider(model.name))
        for model in usable(ChatModel.objects.enabled(), row.user_id)
    ]
    return [offer for offer in offers if key_scope_allows(row, offer)]


def key_offer(row: ApiKey, name: str) -> Offer | None:
    """What `name` is among what the key's user may use, whatever the key's scope (an operator's agent
    before the user's own, before a model, as key_offers lists them), found by its slug or id: a turn
    reads the one row it names, not the whole catalog."""
    agent = usable(Agent.objects.enabled(), row.user_id).filter(slug=name).only("slug", "updated_at").first()
    if agent is None and own_agents_on():
        own = Agent.owned.enabled().filter(owner_id=row.user_id, slug=name)
        agent = own.only("slug", "updated_at").first()
        if agent is not None:
            return Offer(agent.slug, _seconds(agent.updated_at), "user", agent=True)
    if agent is not None:
        return Offer(agent.slug, _seconds(agent.updated_at), "operator", agent=True)
    model = (
        usable(ChatModel.objects.enabled(), row.user_id).filter(name=name).only("name", "synced_at").first()
    )
    return Offer(model.name, _seconds(model.synced_at), _provider(model.name)) if model else None


def key_scope_allows(row: ApiKey, offer: Offer) -> bool:
    return not row.scope or offer.id in row.scope


def _seconds(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment else 0


def _provider(model_id: str) -> str:
    """Who makes a model: its id's first part (`openai` of `openai/gpt-5.1`)."""
    return model_id.partition("/")[0] if "/" in model_id else "dedalus"
