import json

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html

from ..agents import catalog
from ..mcp import credentials as mcp_credentials
from ..models import (
    Agent,
    Attachment,
    ChatModel,
    Conversation,
    DailyUsage,
    Feedback,
    MCPCredential,
    MCPServerPreset,
    Message,
    Share,
    UserQuota,
)
from .csv_cells import InertCsvWriter
from .filters import DateRangeFilter
from .usage_charts import usage_chart_columns, usage_summaries


@admin.register(ChatModel)
class ChatModelAdmin(admin.ModelAdmin):
    list_display = [
        "label",
        "name",
        "enabled",
        "is_default",
        "position",
        "listed",
        "input_token_limit",
        "price_input",
        "price_output",
        "synced_at",
    ]
    list_editable = ["enabled", "is_default", "position"]
    list_filter = ["enabled", "listed"]
    search_fields = ["name", "label"]
    readonly_fields = ["listed", "synced_at"]
    actions = ["disable", "catalog_sync"]

    @admin.action(description="Sync the catalog from the API (capabilities, limits, prices)")
    def catalog_sync(self, request: HttpRequest, queryset) -> None:
        try:
            result = catalog.catalog_sync(catalog.catalog_fetch())
        except catalog.CatalogUnavailable as exc:
            self.message_user(request, f"The catalog was not synced: {exc}", messages.ERROR)
            return
        self.message_user(
            request,
            f"{len(result.updated)} model(s) updated, {len(result.added)} added (disabled), "
            f"{len(result.unlisted)} no longer listed by the API.",
            messages.SUCCESS,
        )

    @admin.action(description="Disable selected models (replies in flight finish)")
    def disable(self, request: HttpRequest, queryset) -> None:
        count = queryset.update(enabled=False, is_default=False)
        self.message_user(
            request, f"{count} model(s) disabled; new messages can no longer pick them.", messages.SUCCESS
        )


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


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value: not the stored one, not the one just posted."""

    def format_value(self, value: object) -> None:
        return None


class MCPServerPresetForm(forms.ModelForm):
    shared_credentials = forms.CharField(
        required=False,
        strip=False,
        widget=WriteOnlyTextarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
        help_text="Sent with every request to this server: one NAME=value per line (or a JSON object). "
        "They replace the current ones; left empty, the current ones stay. Never shown again.",
    )
    clear_shared_credentials = forms.BooleanField(required=False, help_text="Remove the shared credentials.")

    class Meta:
        model = MCPServerPreset
        fields = [
            "label",
            "target",
            "description",
            "enabled",
            "position",
            "user_credentials",
            "credential_names",
        ]

    def clean_shared_credentials(self) -> dict[str, str] | None:
        text = self.cleaned_data["shared_credentials"].strip()
        if not text:
            return None
        try:
            values = json.loads(text) if text.startswith("{") else _name_value_lines(text)
        except ValueError as exc:
            raise forms.ValidationError("Write one NAME=value per line, or a JSON object.") from exc
        return mcp_credentials.values_clean(values)


def _name_value_lines(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError("a line without =")
    return {name.strip(): value for name, value in pairs}


@admin.register(MCPServerPreset)
class MCPServerPresetAdmin(admin.ModelAdmin):
    form = MCPServerPresetForm
    list_display = ["label", "target", "enabled", "position", "credentials"]
    list_editable = ["enabled", "position"]
    list_filter = ["enabled", "user_credentials"]
    search_fields = ["label", "target", "description"]
    readonly_fields = ["shared_credential_names"]

    @admin.display(description="Credentials")
    def credentials(self, preset: MCPServerPreset) -> str:
        kinds = (["shared"] if preset.has_shared_credentials else []) + (
            ["each user's"] if preset.user_credentials else []
        )
        return ", ".join(kinds) or "none"

    @admin.display(description="Shared credentials stored")
    def shared_credential_names(self, preset: MCPServerPreset) -> str:
        names = mcp_credentials.preset_credential_names(preset)
        if names:
            return f"{', '.join(names)} (values hidden)"
        return "unreadable: enter them again" if preset.has_shared_credentials else "none"

    def save_model(self, request: HttpRequest, obj: MCPServerPreset, form, change: bool) -> None:
        if form.cleaned_data.get("clear_shared_credentials"):
            mcp_credentials.preset_credentials_set(obj, None)
        elif form.cleaned_data.get("shared_credentials"):
            mcp_credentials.preset_credentials_set(obj, form.cleaned_data["shared_credentials"])
        super().save_model(request, obj, form, change)


@admin.register(MCPCredential)
class MCPCredentialAdmin(admin.ModelAdmin):
    """Users' own MCP credentials: who holds which (never a value); an operator may only remove them."""

    list_display = ["preset", "user", "names", "updated_at"]
    list_filter = ["preset"]
    search_fields = ["user__username", "preset__label"]
    readonly_fields = ["preset", "user", "names", "updated_at"]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


PREVIEW_CHARS = 160
# A title in a list column: long enough to tell conversations apart, short enough to leave room.
TITLE_CHARS = 60


def preview(text: str, chars: int = PREVIEW_CHARS) -> str:
    """A text's first words on one line, cut at `chars` with an ellipsis (its own page shows it whole)."""
    line = " ".join(text.split())
    return line if len(line) <= chars else line[: chars - 1] + "…"


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["created_at", "role", "status", "model", "content_preview", "total_tokens", "error_preview"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="content")
    def content_preview(self, message: Message) -> str:
        return preview(message.content)

    @admin.display(description="error")
    def error_preview(self, message: Message) -> str:
        return preview(message.error)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["session_id", "title_preview", "user", "model", "updated_at"]
    list_filter = ["model", "messages__status", "updated_at"]
    search_fields = ["session_id", "title", "user__username", "messages__content"]
    # current_message too: an editable select would list every message of every conversation.
    readonly_fields = [
        "session_id",
        "user",
        "owner_session_key",
        "current_message",
        "mcp_servers_listed",
        "settings",
        "created_at",
        "updated_at",
    ]
    exclude = ["mcp_servers"]
    inlines = [MessageInline]

    @admin.display(description="title", ordering="title")
    def title_preview(self, conversation: Conversation) -> str:
        return preview(conversation.title, TITLE_CHARS)

    @admin.display(description="MCP servers")
    def mcp_servers_listed(self, conversation: Conversation) -> str:
        return ", ".join(conversation.mcp_servers) or "none"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a conversation is made by its first message, never by hand

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user").distinct()


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "conversation_title",
        "role",
        "status",
        "model",
        "total_tokens",
        "cost",
        "created_at",
    ]
    list_filter = ["status", "role", "model"]
    search_fields = ["content", "conversation__session_id"]
    list_select_related = ["conversation"]

    @admin.display(description="conversation", ordering="conversation__title")
    def conversation_title(self, message: Message) -> str:
        return preview(str(message.conversation), TITLE_CHARS)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(UserQuota)
class UserQuotaAdmin(admin.ModelAdmin):
    list_display = ["user", "daily_tokens"]
    list_editable = ["daily_tokens"]
    search_fields = ["user__username", "user__email"]
    autocomplete_fields = ["user"]


USAGE_COLUMNS = [
    "day",
    "owner_key",
    "user",
    "model",
    "replies",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost",
]


@admin.register(DailyUsage)
class DailyUsageAdmin(admin.ModelAdmin):
    """Tokens and replies per day, owner and model, from the usage ledger; with totals and CSV export."""

    list_display = [
        "day",
        "owner",
        "model",
        "replies",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_usd",
    ]
    list_display_links = None
    list_filter = [("day", DateRangeFilter), "model"]
    date_hierarchy = "day"
    search_fields = ["owner_key", "user__username", "model"]
    list_select_related = ["user"]
    change_list_template = "admin/conversations/dailyusage/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="owner", ordering="owner_key")
    def owner(self, row: DailyUsage) -> str:
        """The user's name, or "anonymous" for a browser session (its key is a digest, of use to no one)."""
        return row.user.get_username() if row.user_id else "anonymous"

    @admin.display(description="cost (USD)", ordering="cost")
    def cost_usd(self, row: DailyUsage) -> str:
        """Four decimals (the stored eight say nothing more to a reader); "—" when nothing was priced."""
        return "—" if row.cost is None else f"{row.cost:.4f}"

    def get_urls(self) -> list:
        export = path(
            "export.csv", self.admin_site.admin_view(self.export_csv), name="conversations_dailyusage_csv"
        )
        return [export, *super().get_urls()]

    def filtered(self, request: HttpRequest):
        """The rows the changelist shows for this request's filters, search and date drill-down."""
        return self.get_changelist_instance(request).get_queryset(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context is not None and "cl" in context:
            rows = context["cl"].queryset
            summaries = usage_summaries(rows)
            context["totals"] = rows.totals()
            context["summaries"] = summaries
            context["chart_data"] = usage_chart_columns(summaries)
            context["export_query"] = request.GET.urlencode()
        return response

    def export_csv(self, request: HttpRequest) -> HttpResponse:
        """The changelist's rows (same filters) as CSV."""
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="chat-usage.csv"'
        writer = InertCsvWriter(response)
        writer.writerow(USAGE_COLUMNS)
        for row in self.filtered(request):
            writer.writerow(
                [
                    getattr(row, column) or "" if column == "user" else getattr(row, column)
                    for column in USAGE_COLUMNS
                ]
            )
        return response


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    """Uploads, read-only: what an operator may see of them (never their content here) and remove."""

    list_display = ["name", "kind", "size", "owner", "conversation", "created_at"]
    list_filter = ["kind", "created_at"]
    search_fields = ["name", "owner_key"]
    readonly_fields = [
        "id",
        "name",
        "kind",
        "content_type",
        "size",
        "owner_key",
        "conversation",
        "pages",
        "width",
        "height",
        "created_at",
    ]
    fields = readonly_fields
    list_select_related = ["conversation"]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).with_owner_name()

    @admin.display(description="owner", ordering="owner_key")
    def owner(self, attachment: Attachment) -> str:
        """The user's name, "anonymous" for a browser session (its key is a digest), else the key."""
        if attachment.owner_key.startswith("s:"):
            return "anonymous"
        return attachment.owner_name or attachment.owner_key

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    """Users' thumbs on replies, with their conversation, and the counts per model, agent and day."""

    list_display = ["updated_at", "rating", "comment_preview", "reply_model", "agent", "conversation_link"]
    list_filter = ["rating", "message__model", "message__agent_slug", "updated_at"]
    search_fields = ["comment", "message__conversation__session_id"]
    list_select_related = ["message__conversation"]
    readonly_fields = ["message", "rating", "comment", "created_at", "updated_at"]
    change_list_template = "admin/conversations/feedback/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="comment")
    def comment_preview(self, row: Feedback) -> str:
        return preview(row.comment)

    # Not `model`: ModelAdmin.model is the admin's model class, and the list showed it, called on the row.
    @admin.display(description="model", ordering="message__model")
    def reply_model(self, row: Feedback) -> str:
        return row.message.model

    @admin.display(description="agent", ordering="message__agent_slug")
    def agent(self, row: Feedback) -> str:
        return row.message.agent_slug or "—"

    @admin.display(description="conversation")
    def conversation_link(self, row: Feedback) -> str:
        conversation = row.message.conversation
        url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
        return format_html('<a href="{}">{}</a>', url, preview(str(conversation), TITLE_CHARS))

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context is not None and "cl" in context:
            rows = context["cl"].queryset.order_by()
            counts = {
                "up": Count("pk", filter=Q(rating=Feedback.Rating.UP)),
                "down": Count("pk", filter=Q(rating=Feedback.Rating.DOWN)),
            }
            context["by_model"] = rows.values("message__model").annotate(**counts).order_by("message__model")
            context["by_agent"] = (
                rows.values("message__agent_slug").annotate(**counts).order_by("message__agent_slug")
            )
            context["by_day"] = (
                rows.annotate(day=TruncDate("updated_at"))
                .values("day")
                .annotate(**counts)
                .order_by("-day")[:30]
            )
        return response


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    """Share links: what is shared, since when, and for whom; revoking one deletes it (its URL then 404s)."""

    list_display = ["title_shown", "conversation_link", "login_required", "message_count", "updated_at"]
    list_filter = ["login_required", "updated_at"]
    search_fields = ["title", "conversation__session_id", "conversation__owner_key"]
    list_select_related = ["conversation"]
    readonly_fields = ["token", "conversation", "title", "login_required", "created_at", "updated_at"]
    exclude = ["messages"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # only an owner shares

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="title", ordering="title")
    def title_shown(self, row: Share) -> str:
        return row.title or "(untitled)"

    @admin.display(description="messages")
    def message_count(self, row: Share) -> int:
        return len(row.messages)

    @admin.display(description="conversation")
    def conversation_link(self, row: Share) -> str:
        url = reverse("admin:conversations_conversation_change", args=[row.conversation_id])
        return format_html('<a href="{}">{}</a>', url, row.conversation.session_id)

    @admin.action(description="Revoke the selected share links", permissions=["delete"])
    def revoke(self, request: HttpRequest, queryset) -> None:
        revoked, _ = queryset.delete()
        self.message_user(request, f"Revoked {revoked} share link(s): their URLs now answer 404.")
