"""What an operator offers: the chat models (synced from the API's catalog) and the agents."""

from __future__ import annotations

from typing import Any, NamedTuple

from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q

from ..costs import Prices
from ..validators import agent_definition_errors


class ChatModelQuerySet(models.QuerySet):
    def enabled(self) -> ChatModelQuerySet:
        """Models a user may pick, in the admin's order."""
        return self.filter(enabled=True).order_by("position", "label")

    def enabled_choices(self) -> list[ModelChoice]:
        """Every enabled model's name, default flag and input limit, in the admin's order (one query)."""
        return [choice for choice, _ in self.enabled_choices_with()]

    def enabled_choices_with(self, *extra: str) -> list[tuple[ModelChoice, tuple[Any, ...]]]:
        """`enabled_choices`, each with the values of the `extra` fields or annotations of its row."""
        rows = self.enabled().values_list(
            *extra,
            "name",
            "is_default",
            "input_token_limit",
            "output_token_limit",
            "price_input",
            "price_output",
            "price_cached",
            "capabilities",
        )
        return [
            (ModelChoice(*row[:4], prices=Prices(*row[4:7]), vision=(row[7] or {}).get("vision")), extras)
            for extras, row in ((row[: len(extra)], row[len(extra) :]) for row in rows)
        ]

    def default_name(self) -> str | None:
        """Return the name of the default enabled model, else the first enabled one, else None."""
        choices = self.enabled_choices()
        return next((c.name for c in choices if c.is_default), choices[0].name if choices else None)


class ModelChoice(NamedTuple):
    """An enabled model as a turn chooses among them."""

    name: str
    is_default: bool
    input_token_limit: int | None
    output_token_limit: int | None = None
    prices: Prices | None = None
    vision: bool | None = None  # whether it reads images, when the catalog says


class OneDefault(models.Model):
    """A model of which one row at most is the default (an `is_default` field and a unique constraint
    on it): making a row the default quietly takes the flag from the previous one, so the admin never
    trips over the constraint."""

    class Meta:
        abstract = True

    def save(self, *args: object, **kwargs: object) -> None:
        with transaction.atomic():
            if self.is_default:
                type(self)._default_manager.filter(is_default=True).exclude(pk=self.pk).update(
                    is_default=False
                )
            super().save(*args, **kwargs)

    def validate_constraints(self, exclude: object = None) -> None:
        # A new default is valid: save() takes the flag from the old one in the same breath.
        super().validate_constraints(exclude={*(exclude or ()), "is_default"} if self.is_default else exclude)


class ChatModel(OneDefault):
    name = models.CharField(
        max_length=200, unique=True, help_text="The Dedalus model id, e.g. openai/gpt-5.1."
    )
    label = models.CharField(max_length=100, help_text="What the model picker shows.")
    enabled = models.BooleanField(default=True, db_index=True)
    is_default = models.BooleanField(default=False, help_text="Picked for new conversations.")
    position = models.PositiveIntegerField(default=0, help_text="Lower comes first in the picker.")
    # From the API's catalog (`manage.py models_sync`): what the model can do, and what it costs.
    capabilities = models.JSONField(default=dict, blank=True, help_text="vision, tools, thinking, ...")
    input_token_limit = models.PositiveIntegerField(null=True, blank=True)
    output_token_limit = models.PositiveIntegerField(null=True, blank=True)
    price_input = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, help_text="USD per million input tokens."
    )
    price_output = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, help_text="USD per million output tokens."
    )
    price_cached = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="USD per million cached input tokens.",
    )
    listed = models.BooleanField(
        null=True, blank=True, help_text="In the API's catalog at the last sync (no: retired or unknown)."
    )
    synced_at = models.DateTimeField(null=True, blank=True)
    groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="chat_models",
        help_text="Who may use it: members of any of these groups (empty: everyone).",
    )

    objects = ChatModelQuerySet.as_manager()

    class Meta:
        ordering = ["position", "label"]
        verbose_name = "chat model"
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_chat_model"
            )
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.name})"


class AgentQuerySet(models.QuerySet):
    def enabled(self) -> AgentQuerySet:
        """Agents a user may pick, in the admin's order."""
        return self.filter(enabled=True).order_by("position", "name")


# The start of every user's own agent's slug: a colon no operator's slug may hold, so the two never meet.
OWN_AGENT_SLUG_PREFIX = "my:"


class OperatorAgentManager(models.Manager.from_queryset(AgentQuerySet)):
    """The operator's agents only: the default manager, so the admin, `agents_load`, the default agent
    and every existing query never see a user's own agent."""

    def get_queryset(self) -> AgentQuerySet:
        return super().get_queryset().filter(owner__isnull=True)


class OwnAgentManager(models.Manager.from_queryset(AgentQuerySet)):
    """The agents users built for themselves ("My agents"), each visible to its owner only."""

    def get_queryset(self) -> AgentQuerySet:
        return super().get_queryset().filter(owner__isnull=False)


class Agent(OneDefault):
    """What answers in a conversation: instructions, the model that answers and the ones it may hand off
    to, their settings and MCP servers. A plain model is picked as it always was; an agent is this.

    An operator's agent has no `owner`; a user's own agent has one, and a slug starting "my:"."""

    owner = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.CASCADE,
        related_name="own_agents",
        help_text="The user who built it for themselves; empty: the operator's.",
    )
    slug = models.SlugField(max_length=64, unique=True, help_text="How clients and files name it.")
    name = models.CharField(max_length=100, help_text="What the agent picker shows.")
    description = models.TextField(blank=True, help_text="A sentence or two for the picker.")
    colour = models.CharField(max_length=7, blank=True, help_text="#rrggbb for its mark on the page.")
    instructions = models.TextField(blank=True, help_text="Sent as the system message of every request.")
    model_names = models.JSONField(
        default=list,
        help_text="Dedalus model ids: the first answers, the others may take over mid-reply (handoffs).",
    )
    settings = models.JSONField(
        default=dict, blank=True, help_text="temperature, max_tokens, top_p, reasoning_effort."
    )
    model_settings = models.JSONField(
        default=dict,
        blank=True,
        help_text="Settings for one model only, by model id, over the shared ones: "
        '{"openai/gpt-5.1": {"reasoning_effort": "high"}}.',
    )
    mcp_servers = models.JSONField(default=list, blank=True, help_text="org/name[@version] or https URLs.")
    user_may_change_model = models.BooleanField(default=False)
    user_may_change_mcp_servers = models.BooleanField(default=False)
    user_may_change_settings = models.BooleanField(
        default=False,
        help_text="Users may set temperature, max tokens and reasoning effort per conversation.",
    )
    enabled = models.BooleanField(default=True, db_index=True)
    is_default = models.BooleanField(default=False, help_text="Picked for new conversations.")
    position = models.PositiveIntegerField(default=0, help_text="Lower comes first in the picker.")
    groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="agents",
        help_text="Who may use it: members of any of these groups (empty: everyone).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = OperatorAgentManager()
    owned = OwnAgentManager()

    class Meta:
        ordering = ["position", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_agent"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    def clean(self) -> None:
        """Refuse model ids that are not in the catalog (ChatModel), settings out of their range, MCP
        servers that are not slugs or https URLs and a colour that is not #rrggbb, each under its field."""
        errors = agent_definition_errors(
            model_names=self.model_names,
            settings=self.settings,
            mcp_servers=self.mcp_servers,
            model_settings=self.model_settings,
            colour=self.colour,
        )
        if not errors.get("model_names"):
            limits = dict(
                ChatModel.objects.filter(name__in=self.model_names).values_list("name", "output_token_limit")
            )
            unknown = [name for name in self.model_names if name not in limits]
            if unknown:
                errors["model_names"] = f"Not in the model catalog: {', '.join(unknown)}."
            elif not errors.get("settings") and not errors.get("model_settings"):
                errors.update(self._output_limit_errors(limits))
        if errors:
            raise ValidationError(errors)

    def _output_limit_errors(self, limits: dict[str, int | None]) -> dict[str, str]:
        """A max_tokens beyond the catalog's output limit of a model it applies to, under its field."""
        errors: dict[str, str] = {}
        shared = self.settings.get("max_tokens")
        for name in self.model_names:
            limit = limits.get(name)
            own = (self.model_settings or {}).get(name, {}).get("max_tokens")
            if limit and own is not None and own > limit:
                errors["model_settings"] = f"{name}: max_tokens may be at most {limit} (the catalog's limit)."
            elif limit and own is None and shared is not None and shared > limit:
                errors["settings"] = f"max_tokens may be at most {limit}, {name}'s output limit."
        return errors
