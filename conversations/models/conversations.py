"""Conversations, their messages (a tree of versions), feedback on replies, and share links."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from .catalog import Agent


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

    class Source(models.TextChoices):
        PAGE = "page"  # the chat page (or a socket client)
        API = "api"  # POST /v1/chat/completions

    source = models.CharField(
        max_length=8,
        choices=Source.choices,
        default=Source.PAGE,
        help_text="Where its turns come from: the chat page or the OpenAI-compatible API.",
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
        TOOL = "tool"  # an API client's tool result, answering one of its reply's `tool_calls`

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
    tool_calls = models.JSONField(
        default=list, blank=True, help_text="The API client's tools the reply called, as OpenAI shows them."
    )
    tool_call_id = models.CharField(
        max_length=200, blank=True, help_text="A tool result's call: the id of its reply's tool call."
    )
    reasoning = models.TextField(
        blank=True, help_text="What the model thought before it answered (never sent back to it)."
    )
    reasoning_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="How long it thought: from the request until its first text."
    )
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
