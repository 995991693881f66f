"""Fields edited in an admin list, each named for screen readers: Django's `list_editable` inputs have no
label of their own, only the column's heading above them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms import BaseModelFormSet, ModelForm
from django.http import HttpRequest


class LabelledListEditableAdmin(admin.ModelAdmin):
    """Each editable cell is named by its column and its row: "Enabled of Counsel"."""

    def get_changelist_formset(self, request: HttpRequest, **kwargs: Any) -> type[BaseModelFormSet]:
        editable = self.list_editable

        class LabelledFormSet(super().get_changelist_formset(request, **kwargs)):
            def _construct_form(self, i: int, **form_kwargs: Any) -> ModelForm:
                form = super()._construct_form(i, **form_kwargs)
                for name in editable:
                    field = form.fields[name]
                    field.widget.attrs["aria-label"] = f"{field.label} of {form.instance}"
                return form

        return LabelledFormSet
