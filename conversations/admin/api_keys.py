"""API keys: every user's, by prefix; an operator makes one for any user (the key is shown once, in the
message after saving) and revokes them. The hash is never shown."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from ..apikeys.keys import api_key_create, api_keys_revoke, expiry_within_maximum, keys_held, scope_errors
from ..exceptions import ChatError
from ..models import ApiKey

# What an operator sets on a key once it exists: the rest is the key's for good.
CHANGEABLE = {"name", "rate_limit_per_minute"}


class ApiKeyAddForm(forms.ModelForm):
    """A new key, checked as the page's and the command's are (scope, expiry within the maximum, the
    user's cap) before anything is made."""

    class Meta:
        model = ApiKey
        fields = ["user", "name", "scope", "expires_at", "rate_limit_per_minute"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The admin's date and time boxes are preceded by "Date:" and "Time:" as text, not as labels.
        widget = self.fields["expires_at"].widget
        for box, part in zip(getattr(widget, "widgets", ()), ("date", "time"), strict=False):
            box.attrs["aria-label"] = f"Expires at: {part}"

    def clean_scope(self) -> Any:
        scope = self.cleaned_data.get("scope") or []
        if problem := scope_errors(scope):
            raise forms.ValidationError(problem)
        return scope

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        try:
            data["expires_at"] = expiry_within_maximum(data.get("expires_at"))
        except ChatError as exc:
            self.add_error("expires_at", exc.message)
        user = data.get("user")
        if user is not None and keys_held(user.pk).count() >= self.max_keys():
            self.add_error("user", f"{user} holds {self.max_keys()} keys not revoked; revoke one first.")
        return data

    @staticmethod
    def max_keys() -> int:
        return settings.CHAT_API_KEYS_PER_USER


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "prefix_shown",
        "user",
        "name",
        "scope_shown",
        "expires_at",
        "last_used_at",
        "is_revoked",
        "created_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "expires_at", "created_at"]
    search_fields = ["prefix", "name", "user__username"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]  # select2's autocomplete box has no accessible name until something is picked
    actions = ["revoke"]

    def get_form(
        self, request: HttpRequest, obj: ApiKey | None = None, **kwargs: Any
    ) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        if obj is None:
            return list(ApiKeyAddForm.Meta.fields)
        return [
            "prefix_shown",
            "user",
            "name",
            "scope",
            "expires_at",
            "rate_limit_per_minute",
            "last_used_at",
            "revoked_at",
            "created_at",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        if obj is None:
            return []
        return [field for field in self.get_fields(request, obj) if field not in CHANGEABLE]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        row, key = api_key_create(
            obj.user_id,
            name=obj.name,
            expires_at=obj.expires_at,
            scope=obj.scope or [],
            rate_limit_per_minute=obj.rate_limit_per_minute,
        )
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(row, field.attname))
        messages.warning(request, f"The new key of {row.user}, shown only now; copy it: {key}")

    @admin.display(description="prefix", ordering="prefix")
    def prefix_shown(self, row: ApiKey) -> str:
        return f"{row.prefix}…"

    @admin.display(description="scope")
    def scope_shown(self, row: ApiKey) -> str:
        return ", ".join(row.scope) if row.scope else "all"

    @admin.display(description="revoked", boolean=True, ordering="revoked_at")
    def is_revoked(self, row: ApiKey) -> bool:
        return row.revoked

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = api_keys_revoke(queryset)
        self.message_user(request, f"Revoked {revoked} API key(s): they stop working at once.")
