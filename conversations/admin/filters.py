"""A from/to date filter for admin lists: two date inputs instead of a fixed set of links."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import get_last_value_from_parameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import Field, Model, QuerySet
from django.http import HttpRequest


class DateRangeForm(forms.Form):
    since = forms.DateField(required=False, label="From")
    until = forms.DateField(required=False, label="To")

    def clean(self) -> dict:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The first date must not come after the second.", code="date_order")
        return cleaned


class DateRangeFilter(admin.FieldListFilter):
    """`<field>__gte` and `<field>__lte` (both days included), from a GET form that keeps the list's other
    filters. A date that does not parse, or a range backwards, filters nothing and says why."""

    template = "admin/conversations/date_range_filter.html"

    def __init__(
        self,
        field: Field,
        request: HttpRequest,
        params: dict[str, list[str]],
        model: type[Model],
        model_admin: admin.ModelAdmin,
        field_path: str,
    ) -> None:
        self.lookup_since, self.lookup_until = f"{field_path}__gte", f"{field_path}__lte"
        self.raw = {
            "since": get_last_value_from_parameters(params, self.lookup_since) or "",
            "until": get_last_value_from_parameters(params, self.lookup_until) or "",
        }
        super().__init__(field, request, params, model, model_admin, field_path)
        self.form = DateRangeForm(self.raw)

    def expected_parameters(self) -> list[str]:
        return [self.lookup_since, self.lookup_until]

    def range(self) -> tuple[date | None, date | None]:
        """The dates to filter by: (None, None) when the form is invalid."""
        if not self.form.is_valid():
            return None, None
        return self.form.cleaned_data["since"], self.form.cleaned_data["until"]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        since, until = self.range()
        if since:
            queryset = queryset.filter(**{self.lookup_since: since})
        if until:
            queryset = queryset.filter(**{self.lookup_until: until})
        return queryset

    def choices(self, changelist: ChangeList) -> Iterator[dict]:
        """One "choice": what the template needs to draw the form and its reset link."""
        mine = self.expected_parameters()
        yield {
            "selected": any(self.raw.values()),
            "kept": [
                (name, value)
                for name, values in changelist.filter_params.items()
                if name not in mine
                for value in values
            ],
            "reset": changelist.get_query_string(remove=mine),
        }
