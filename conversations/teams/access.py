"""Who may use which agent and model. An operator's agent or a chat model with no group is everyone's;
with groups, it is for the members of any of them alone. Superusers are held to it like anyone (an
operator who wants it joins a group), and an anonymous owner is in no group.

Every path that offers or runs an agent or a model asks here, on every message and never from a cache,
so a user who leaves a group loses what it gave at their next message."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from django.db.models import Exists, Model, OuterRef, Q, QuerySet

from ..models import Agent, ChatModel, ModelChoice

Row = TypeVar("Row", bound=Model)


def usable_by(model: type[Agent] | type[ChatModel], user_id: int | None) -> Q:
    """The rows of `model` (Agent or ChatModel) that user `user_id` may use (None: an anonymous owner):
    those of no group, and those of a group the user is in."""
    through, own = _memberships(model)
    condition = Q(~Exists(through.objects.filter(**{own: OuterRef("pk")})))
    if user_id is None:
        return condition
    return condition | Q(Exists(through.objects.filter(**{own: OuterRef("pk"), "group__user": user_id})))


def usable(queryset: QuerySet[Row], user_id: int | None) -> QuerySet[Row]:
    """`queryset` (of agents or chat models) narrowed to what `user_id` may use."""
    return queryset.filter(usable_by(queryset.model, user_id))


def restricted_marked(queryset: QuerySet[Row]) -> QuerySet[Row]:
    """`queryset` with `restricted` on each row: whether it is limited to groups (for `Reach`)."""
    through, own = _memberships(queryset.model)
    return queryset.annotate(restricted=Exists(through.objects.filter(**{own: OuterRef("pk")})))


@dataclass(slots=True)
class Reach:
    """Who of a batch of owners may use which of a batch of rows (agents or chat models), read in one
    query and only when some row is limited to groups: the rule of `usable_by`, for many users at once
    (a batch of turns of different owners) without a query per owner."""

    members: set[tuple[int, int]] = field(default_factory=set)  # (row, user) through a group

    @classmethod
    def read(
        cls, model: type[Agent] | type[ChatModel], restricted: Iterable[int], user_ids: Iterable[int | None]
    ) -> Reach:
        """The memberships of `user_ids` in the groups of the `restricted` rows of `model`."""
        rows = set(restricted)
        users = {user_id for user_id in user_ids if user_id is not None}
        if not rows or not users:
            return cls()
        through, own = _memberships(model)
        pairs = through.objects.filter(**{f"{own}__in": rows, "group__user__in": users})
        return cls(set(pairs.values_list(own, "group__user").distinct()))

    def allows(self, pk: int, restricted: bool, user_id: int | None) -> bool:
        return not restricted or (user_id is not None and (pk, user_id) in self.members)


@dataclass(frozen=True, slots=True)
class ModelsUsable:
    """The enabled models an owner may use (`choices`, in the admin's order) and the enabled ones kept
    from them (`withheld`: a conversation that stored one is refused, not quietly moved to another)."""

    choices: list[ModelChoice]
    withheld: frozenset[str] = frozenset()


def models_usable(user_ids: Iterable[int | None]) -> tuple[list[ModelChoice], dict[int | None, ModelsUsable]]:
    """Every enabled model, and what each of `user_ids` may use of them: one query, and one more only
    when a model is limited to groups and a signed-in user is among them."""
    owners = set(user_ids)
    rows = restricted_marked(ChatModel.objects.all()).enabled_choices_with("pk", "restricted")
    reach = Reach.read(ChatModel, (pk for _, (pk, restricted) in rows if restricted), owners)
    usable_by_owner: dict[int | None, ModelsUsable] = {}
    for user_id in owners:
        allowed = [choice for choice, (pk, restricted) in rows if reach.allows(pk, restricted, user_id)]
        names = {choice.name for choice in allowed}
        withheld = frozenset(choice.name for choice, _ in rows if choice.name not in names)
        usable_by_owner[user_id] = ModelsUsable(allowed, withheld)
    return [choice for choice, _ in rows], usable_by_owner


def _memberships(model: type[Model]) -> tuple[type[Model], str]:
    """The table linking `model`'s rows to their groups, and the name of its column for the row."""
    groups = model._meta.get_field("groups")
    return groups.remote_field.through, groups.m2m_field_name()
