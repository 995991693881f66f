"""Chat models, MCP presets, conversations and their messages, as stored in the database."""

from __future__ import annotations

import logging
import uuid
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.storage import Storage, storages
from django.core.signals import setting_changed
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Cast, Now, Substr
from django.dispatch import receiver
from django.utils import timezone
from django.utils.functional import LazyObject, empty

from .costs import Prices
from .validators import CREDENTIAL_NAME_RE, agent_definition_errors, validate_mcp_target

logger = logging.getLogger(__name__)


class ChatModelQuerySet(models.QuerySet):
    def enabled(self) -> ChatModelQuerySet:
        """Models a user may pick, in the admin's order."""
        return self.filter(enabled=True).order_by("position", "label")

    def enabled_choices(self) -> list[ModelChoice]:
        """Every enabled model's name, default flag and input limit, in the admin's order (one query)."""
        rows = self.enabled().values_list(
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
            ModelChoice(*row[:4], prices=Prices(*row[4:7]), vision=(row[7] or {}).get("vision"))
            for row in rows
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


class MCPServerPresetQuerySet(models.QuerySet):
    def enabled(self) -> MCPServerPresetQuerySet:
        """Presets the page offers, in the admin's order."""
        return self.filter(enabled=True).order_by("position", "label")


class MCPServerPreset(models.Model):
    label = models.CharField(max_length=100)
    target = models.CharField(
        max_length=2048,
        validators=[validate_mcp_target],
        help_text="A marketplace slug like org/name (optionally @version) or an https:// URL.",
    )
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True, db_index=True)
    position = models.PositiveIntegerField(default=0)
    # Credentials the server is given on every request (API keys, tokens), sealed (see sealing.py):
    # only the admin's form writes them, and nothing shows them back.
    credentials_sealed = models.TextField(blank=True, default="", editable=False)
    user_credentials = models.BooleanField(
        default=False,
        help_text="Each signed-in user adds their own credentials on the chat page (used instead of "
        "the shared ones); without them, the server cannot be used.",
    )
    credential_names = models.JSONField(
        default=list,
        blank=True,
        help_text='The values a user is asked for, e.g. ["api_key"].',
    )

    objects = MCPServerPresetQuerySet.as_manager()

    class Meta:
        ordering = ["position", "label"]
        verbose_name = "MCP server preset"

    def __str__(self) -> str:
        return f"{self.label} ({self.target})"

    @property
    def has_shared_credentials(self) -> bool:
        return bool(self.credentials_sealed)

    def clean(self) -> None:
        names = self.credential_names
        if not isinstance(names, list) or not all(
            isinstance(name, str) and CREDENTIAL_NAME_RE.fullmatch(name) for name in names
        ):
            raise ValidationError({"credential_names": 'A list of names such as ["api_key", "token"].'})
        if self.user_credentials and not names:
            raise ValidationError({"credential_names": "Name the values each user is asked for."})


class MCPCredential(models.Model):
    """A signed-in user's own credentials for an MCP preset that asks for them, sealed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    preset = models.ForeignKey(MCPServerPreset, on_delete=models.CASCADE, related_name="user_credentials_set")
    sealed = models.TextField(editable=False)
    names = models.JSONField(default=list, editable=False, help_text="The names of the values, for display.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "MCP credential"
        constraints = [
            models.UniqueConstraint(fields=["user", "preset"], name="one_mcp_credential_per_user_and_preset")
        ]

    def __str__(self) -> str:
        return f"{self.preset.label} for user {self.user_id}"


class AgentQuerySet(models.QuerySet):
    def enabled(self) -> AgentQuerySet:
        """Agents a user may pick, in the admin's order."""
        return self.filter(enabled=True).order_by("position", "name")


class Agent(OneDefault):
    """What answers in a conversation: instructions, the model that answers and the ones it may hand off
    to, their settings and MCP servers. A plain model is picked as it always was; an agent is this."""

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
    updated_at = models.DateTimeField(auto_now=True)

    objects = AgentQuerySet.as_manager()

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
        """Refuse model ids that are not in the catalog (ChatModel), settings out of their range and
        MCP servers that are not slugs or https URLs, each under its field."""
        errors = agent_definition_errors(
            model_names=self.model_names,
            settings=self.settings,
            mcp_servers=self.mcp_servers,
            model_settings=self.model_settings,
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


class Conversation(models.Model):
    session_id = models.CharField(max_length=64, help_text="The id in the page and socket URL.")
    owner_key = models.CharField(
        max_length=80,
        help_text="The owner's namespace: u:<user id>, s:<digest of the browser session key> or public.",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="conversations",
    )
    owner_session_key = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="The digest of the anonymous browser session that owns it (never the key itself).",
    )

    class TitleSource(models.TextChoices):
        FIRST_LINE = "first_line"  # the first message's, cleaned: the model may still write one
        MODEL = "model"
        USER = "user"  # renamed: never overwritten

    title = models.CharField(max_length=200, blank=True)
    title_source = models.CharField(
        max_length=16,
        choices=TitleSource.choices,
        default=TitleSource.FIRST_LINE,
        help_text="Who wrote the title: the first message's line, the model, or the user.",
    )
    model = models.CharField(max_length=200, blank=True, help_text="Model of the next reply.")
    mcp_servers = models.JSONField(default=list, blank=True)
    settings = models.JSONField(
        default=dict,
        blank=True,
        help_text="The user's own settings for its replies (temperature, max_tokens, reasoning_effort).",
    )
    agent = models.ForeignKey(
        Agent,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The agent of the next reply; unset, a plain model answers.",
    )
    current_message = models.ForeignKey(
        "Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The leaf of the active branch; unset, the newest message.",
    )
    pinned_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Pinned to the top of its owner's list since then; empty: not pinned.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner_key", "session_id"], name="one_conversation_per_owner_and_id"
            )
        ]

    def __str__(self) -> str:
        return self.title or self.session_id


class MessageQuerySet(models.QuerySet):
    def history(self, conversation: Conversation) -> MessageQuerySet:
        """Messages of one conversation, oldest first, as the page shows them."""
        return self.filter(conversation=conversation).order_by("created_at", "id")

    def streaming(self) -> MessageQuerySet:
        """Replies still being written."""
        return self.filter(status=Message.Status.STREAMING)

    def lease_lapsed(self) -> MessageQuerySet:
        """Streaming replies whose server stopped renewing its lease: it died mid-reply."""
        return self.streaming().filter(lease_expires_at__lt=Now())


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        INTERRUPTED = "interrupted"
        ERROR = "error"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        help_text="The message this one follows in its thread; its siblings share it.",
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    mcp_servers = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE, db_index=True)
    error = models.TextField(blank=True, help_text="Why the reply failed, as the user was told.")
    error_code = models.CharField(max_length=40, blank=True)
    finish_reason = models.CharField(max_length=40, blank=True)
    tools = models.JSONField(default=list, blank=True, help_text="MCP tool activity during the reply.")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True, help_text="Of the completion's.")
    cached_tokens = models.PositiveIntegerField(null=True, blank=True, help_text="Of the prompt's.")
    cost = models.DecimalField(
        max_digits=16,
        decimal_places=8,
        null=True,
        blank=True,
        help_text="USD, from its tokens and its model's catalog prices when it ended (empty: unpriced).",
    )
    client_id = models.CharField(
        max_length=64, blank=True, help_text="The sending client's id for this message, to drop resends."
    )
    streamed_by = models.CharField(
        max_length=200, blank=True, help_text="The server instance streaming this reply (its id)."
    )
    # What a reply was asked of, as it was asked (editing the agent later rewrites none of it), and the
    # models that answered, in order, as the stream named them.
    agent_slug = models.CharField(max_length=64, blank=True, help_text="The agent that answered, if any.")
    request_models = models.JSONField(default=list, blank=True, help_text="The models the request named.")
    request_settings = models.JSONField(default=dict, blank=True, help_text="The settings it was sent with.")
    served_models = models.JSONField(default=list, blank=True, help_text="The models that produced it.")
    attachment_ids = models.JSONField(
        default=list, blank=True, help_text="The attachments a user message carries, in order (their ids)."
    )
    handoff_offsets = models.JSONField(
        default=list,
        blank=True,
        help_text="Where in its text each of the served models after the first began.",
    )
    context_dropped = models.PositiveIntegerField(
        default=0, help_text="Older messages left out of its request to fit the context window."
    )
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="A streaming reply whose lease lapsed lost its server."
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at", "id"], name="message_history_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=~Q(client_id=""),
                name="one_message_per_client_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk} ({self.status})"

    @property
    def usage(self) -> dict[str, int] | None:
        """Token usage as the wire protocol reports it, or None when the upstream gave none."""
        if self.total_tokens is None:
            return None
        usage = {
            "prompt_tokens": self.prompt_tokens or 0,
            "completion_tokens": self.completion_tokens or 0,
            "total_tokens": self.total_tokens,
        }
        if self.reasoning_tokens is not None:
            usage["reasoning_tokens"] = self.reasoning_tokens
        if self.cached_tokens is not None:
            usage["cached_tokens"] = self.cached_tokens
        return usage


class UserQuota(models.Model):
    """A user's own daily token quota, instead of CHAT_DAILY_TOKEN_QUOTA."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_quota")
    daily_tokens = models.PositiveIntegerField(help_text="Tokens per UTC day; 0 means unlimited.")

    class Meta:
        verbose_name = "user quota"

    def __str__(self) -> str:
        return f"{self.user}: {self.daily_tokens} tokens/day"


class UsageEntry(models.Model):
    """One billed call, written when it ends and never changed or deleted after: a reply's end, a title,
    an OCR read. Usage, cost, charts and the daily token quota are read from here, so deleting a
    conversation (by hand or by retention) takes none of its usage with it: its id is a plain value."""

    class Kind(models.TextChoices):
        REPLY = "reply"
        TITLE = "title"
        OCR = "ocr"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    owner_key = models.CharField(max_length=80, help_text="The owner's namespace when it was billed.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    conversation_id = models.BigIntegerField(null=True, blank=True, help_text="Kept after it is deleted.")
    message_id = models.BigIntegerField(null=True, blank=True, help_text="The reply, for a reply's entry.")
    model = models.CharField(max_length=200, blank=True)
    agent_slug = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True, help_text="The pages an OCR call read.")
    cost = models.DecimalField(max_digits=16, decimal_places=8, null=True, blank=True, help_text="USD.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "usage entry"
        verbose_name_plural = "usage entries"
        indexes = [models.Index(fields=["owner_key", "created_at"], name="usage_owner_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["message_id"], condition=Q(kind="reply"), name="one_usage_entry_per_reply"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.owner_key} {self.model} {self.total_tokens}"


USAGE_SUMS = ["replies", "prompt_tokens", "completion_tokens", "total_tokens", "cost"]


class DailyUsageQuerySet(models.QuerySet):
    """The usage page's questions, each one grouped query over whatever rows the filters left."""

    def totals(self) -> dict[str, object]:
        """The sums of USAGE_SUMS over the rows (None for an empty set; cost None while nothing is priced)."""
        return self.aggregate(**{name: models.Sum(name) for name in USAGE_SUMS})

    def grouped(self, *fields: str) -> DailyUsageQuerySet:
        """One row per distinct `fields`, with the sums of USAGE_SUMS; unordered (callers order it)."""
        return self.order_by().values(*fields).annotate(**{name: models.Sum(name) for name in USAGE_SUMS})

    def per_day(self) -> DailyUsageQuerySet:
        """Sums per day, oldest first."""
        return self.grouped("day").order_by("day")

    def per_model(self) -> DailyUsageQuerySet:
        """Sums per model, the costliest first (then the most tokens)."""
        return self.grouped("model").order_by(
            models.F("cost").desc(nulls_last=True), "-total_tokens", "model"
        )

    def per_user(self) -> DailyUsageQuerySet:
        """Sums per user, every anonymous session together (`user__username` None), the costliest first."""
        return self.grouped("user__username").order_by(
            models.F("cost").desc(nulls_last=True), "-total_tokens", "user__username"
        )


class DailyUsage(models.Model):
    """Replies, tokens and cost per day, owner and model: a database view over the usage ledger
    (UsageEntry), read-only; `replies` counts reply ends, the sums every billed call."""

    day = models.DateField()
    owner_key = models.CharField(max_length=80)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING, related_name="+"
    )
    model = models.CharField(max_length=200)
    replies = models.PositiveIntegerField()
    prompt_tokens = models.PositiveBigIntegerField()
    completion_tokens = models.PositiveBigIntegerField()
    total_tokens = models.PositiveBigIntegerField()
    cost = models.DecimalField(max_digits=20, decimal_places=8, null=True)

    objects = DailyUsageQuerySet.as_manager()

    class Meta:
        managed = False
        db_table = "conversations_dailyusage"
        ordering = ["-day", "owner_key", "model"]
        verbose_name = "daily usage"
        verbose_name_plural = "daily usage"

    def __str__(self) -> str:
        return f"{self.day} {self.owner_key} {self.model}"


class _AttachmentsStorage(LazyObject):
    """The `attachments` entry of STORAGES, looked up when first used (as Django's default_storage is),
    and again after STORAGES changes (the tests point it at a folder of their own)."""

    def _setup(self) -> None:
        self._wrapped = storages["attachments"]


_ATTACHMENTS_STORAGE = _AttachmentsStorage()


@receiver(setting_changed)
def _attachments_storage_reset(*, setting: str, **kwargs: object) -> None:
    if setting == "STORAGES":
        _ATTACHMENTS_STORAGE._wrapped = empty


def attachments_storage() -> Storage:
    """Where attachment files live: the local filesystem unless an S3-compatible store is configured."""
    return _ATTACHMENTS_STORAGE  # type: ignore[return-value]


class AttachmentQuerySet(models.QuerySet):
    def unsent(self) -> AttachmentQuerySet:
        """Uploads no message has named yet (attachments_cleanup removes them after a while)."""
        return self.filter(conversation__isnull=True)

    def bytes_stored(self) -> int:
        """What these attachments keep, in bytes: their files and their stored text."""
        total = self.aggregate(total=models.Sum(models.F("size") + models.F("text_bytes")))["total"]
        return total or 0

    def with_owner_name(self) -> AttachmentQuerySet:
        """Each with `owner_name`: its user's name for a `u:` key (one indexed lookup), else None."""
        user_model = get_user_model()
        user_id = Cast(Substr(models.OuterRef("owner_key"), 3), models.BigIntegerField())
        username = user_model.objects.filter(pk=user_id).values(user_model.USERNAME_FIELD)[:1]
        return self.annotate(
            owner_name=models.Case(
                models.When(owner_key__startswith="u:", then=models.Subquery(username)),
                default=None,
                output_field=models.CharField(),
            )
        )


class Attachment(models.Model):
    """A file its owner uploaded, kept as `uploads.py` checked it. It belongs to the conversation of the
    first message that named it (until then, `conversation` is empty) and goes with it; messages name
    their attachments in `Message.attachment_ids` (an edit keeps its turn's). Only its owner reaches it."""

    class Kind(models.TextChoices):
        IMAGE = "image"
        PDF = "pdf"
        TEXT = "text"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_key = models.CharField(max_length=80, db_index=True)
    conversation = models.ForeignKey(
        "Conversation", null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    name = models.CharField(max_length=255, help_text="The file's name as uploaded (shown, never trusted).")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    content_type = models.CharField(max_length=100, help_text="From the file's content, not its name.")
    size = models.PositiveIntegerField(help_text="Bytes kept.")
    file = models.FileField(
        storage=attachments_storage, upload_to="files/", max_length=300
    )  # attachments.UPLOAD_FOLDER
    text = models.TextField(blank=True, help_text="A PDF's text layer, or a text file's text.")
    text_bytes = models.PositiveIntegerField(
        default=0, help_text="The UTF-8 bytes of `text`: stored too, so counted with `size` in the quotas."
    )

    class TextReading(models.TextChoices):
        """Where the OCR of a scanned PDF stands (ocr.py); empty for every other file."""

        READING = "reading"  # its text is on its way
        READ = "read"
        SKIPPED = "skipped"  # not read: its owner may not, is over the day's pages, or the server is busy
        FAILED = "failed"

    text_reading = models.CharField(max_length=10, choices=TextReading.choices, blank=True)
    content_hash = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="SHA-256 of a scan's bytes: one OCR per content."
    )
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AttachmentQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["owner_key", "created_at"], name="attachment_owner_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.size} bytes)"


def attachment_file_discard(name: str) -> None:
    """Delete an attachment's file from the attachments storage. A storage that fails (a folder gone
    read-only, S3 unreachable or refusing) is logged, never raised: the caller's work stands, and the
    file, which no row names now, is left for `attachments_cleanup`'s next sweep."""
    try:
        attachments_storage().delete(name)
    except Exception:  # whatever the backend raises (OSError, botocore's errors): the sweep retries
        logger.warning(
            "attachment file not deleted: left for the next sweep", extra={"file": name}, exc_info=True
        )


@receiver(models.signals.post_delete, sender=Attachment)
def _attachment_file_delete(sender: type[Attachment], instance: Attachment, **kwargs: object) -> None:
    """An attachment's file goes with its row (its conversation deleted, by hand or by retention), once
    the deletion commits: a rolled-back delete keeps both."""
    name = instance.file.name
    if name:
        transaction.on_commit(lambda: attachment_file_discard(name))


class Feedback(models.Model):
    """What a reply's owner thought of it: thumbs up or down, and why if they said; changeable."""

    class Rating(models.IntegerChoices):
        UP = 1, "up"
        DOWN = -1, "down"

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "feedback"
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on reply {self.message_id}"


class Share(models.Model):
    """A read-only snapshot of a conversation's active branch, served at an unguessable URL until its owner
    (or an admin) revokes it by deleting the row. One per conversation: sharing again refreshes the
    snapshot under the same token. It goes with its conversation."""

    token = models.CharField(max_length=64, unique=True, help_text="The share URL's secret part.")
    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, related_name="share")
    title = models.CharField(max_length=200, blank=True)
    messages = models.JSONField(
        default=list, help_text="The active branch when shared, as the shared page shows it (no owner data)."
    )
    login_required = models.BooleanField(default=False, help_text="Only signed-in users may view it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="When the snapshot was last taken.")

    class Meta:
        ordering = ["-updated_at"]
        verbose_name = "share link"

    def __str__(self) -> str:
        return self.title or f"share of conversation {self.conversation_id}"
