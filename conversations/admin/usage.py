"""Usage per day, owner and model, from the usage ledger: totals, summaries, charts and a CSV export."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import Group
from django.http import HttpRequest, HttpResponse
from django.urls import path

from ..models import DailyUsage
from .csv_cells import InertCsvWriter
from .filters import DateRangeFilter
from .usage_charts import usage_chart_columns, usage_summaries

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


class GroupFilter(admin.SimpleListFilter):
    """The usage of a group's members (as they are now: a user who left takes their usage along)."""

    title = "group"
    parameter_name = "group"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(str(pk), name) for pk, name in Group.objects.order_by("name").values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset):
        value = self.value()
        return queryset.filter(user__groups=int(value)) if value and value.isdigit() else queryset


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
    list_filter = [("day", DateRangeFilter), "model", GroupFilter]
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
