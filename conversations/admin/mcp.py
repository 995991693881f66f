"""MCP server presets, with their shared credentials written but never shown, and users' own
credentials, which an operator may see the names of and remove."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from ..mcp import credentials as mcp_credentials
from ..models import MCPCredential, MCPServerPreset
from .list_editable import LabelledListEditableAdmin


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
class MCPServerPresetAdmin(LabelledListEditableAdmin):
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
