"""Users' thumbs and comments on replies, with their counts per model, agent and day."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from ..models import Feedback
from .previews import TITLE_CHARS, preview


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
