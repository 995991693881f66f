"""The admin's agent form: fields, not JSON boxes. Models are picked from the catalog in order (the first
answers, the others are handoff targets), each setting is a field of its own with its range, the colour
a colour picker, MCP servers picked from the presets or typed one per line. The form writes the agent's
stored columns (`model_names`, `settings`, `mcp_servers`) in the shapes the rest of the code reads, and
every error stands next to its field, in words."""

from __future__ import annotations

import copy
import json
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.html import format_html, format_html_join

from ..models import Agent, ChatModel, MCPServerPreset
from ..validators import (
    AGENT_COLOUR_RE,
    AGENT_MAX_MODELS,
    AGENT_SETTING_RANGES,
    REASONING_EFFORTS,
    mcp_target_error,
    number_words,
)

SETTING_NAMES = ("temperature", "top_p", "max_tokens", "reasoning_effort")
HANDOFF_ROWS = AGENT_MAX_MODELS - 1
MAX_TOKENS_CEILING = int(AGENT_SETTING_RANGES["max_tokens"][2])
SETTINGS_EXAMPLE = '{"openai/gpt-5.1": {"reasoning_effort": "high"}}'
NO_COLOUR = "#000000"  # what a colour input shows when the agent has none (the input cannot be empty)


class CatalogSelect(forms.Select):
    """A select of model ids whose options carry the catalog's output limit (for the page's script)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.output_limits: dict[str, int] = {}

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        limit = self.output_limits.get(str(value))
        if limit:
            option["attrs"]["data-output-limit"] = str(limit)
        return option


class OrderedSelects(forms.Widget):
    """Several selects in a numbered list, read back as a list in their order (blanks dropped later)."""

    def __init__(self, rows: int, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.select = CatalogSelect()
        self.rows = rows

    def __deepcopy__(self, memo: dict[int, Any]) -> OrderedSelects:
        widget = super().__deepcopy__(memo)
        widget.select = copy.deepcopy(self.select, memo)  # each form's own choices
        return widget

    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[str]:
        return [data.get(f"{name}_{row}", "") for row in range(self.rows)]

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return all(f"{name}_{row}" not in data for row in range(self.rows))

    def id_for_label(self, id_: str) -> str:
        return f"{id_}_0" if id_ else id_

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> str:
        values = list(value) if isinstance(value, list | tuple) else []
        values += [""] * (self.rows - len(values))
        final = self.build_attrs(self.attrs, attrs)
        final.pop("required", None)
        base_id = final.pop("id", None)
        if base_id and "aria-describedby" in final:  # the admin names the help after the label's target
            final["aria-describedby"] = f"{self.id_for_label(base_id)}_helptext"
        rows = []
        for row, chosen in enumerate(values[: self.rows]):
            row_attrs = {**final, "aria-label": f"Handoff model {row + 1}"}
            if base_id:
                row_attrs["id"] = f"{base_id}_{row}"
            rows.append((self.select.render(f"{name}_{row}", chosen, row_attrs, renderer),))
        items = format_html_join("", "<li>{}</li>", rows)
        return format_html('<ol class="agent-handoffs" data-agent-handoffs>{}</ol>', items)


class HandoffModelsField(forms.Field):
    """The handoff models, in order: what the selects hold, blanks dropped."""

    def to_python(self, value: Any) -> list[str]:
        if not isinstance(value, list | tuple):
            return []
        return [str(name).strip() for name in value if str(name).strip()]


class SettingsByModelField(forms.CharField):
    """The advanced settings per model, written as JSON; a mistake is told in words, with its place."""

    widget = forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "vLargeTextField"})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return json.dumps(value, indent=2) if value else ""
        return value

    def to_python(self, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        text = (value or "").strip()
        if not text:
            return {}
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"This is not JSON: {exc.msg.lower()} at line {exc.lineno}, column {exc.colno}. "
                f"Write an object of settings by model id, such as {SETTINGS_EXAMPLE}, or leave it empty.",
                code="invalid",
            ) from exc
        if not isinstance(parsed, dict) or not all(isinstance(one, dict) for one in parsed.values()):
            raise ValidationError(
                f"Write an object of settings by model id, such as {SETTINGS_EXAMPLE}, or leave it empty.",
                code="invalid",
            )
        return parsed

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != (initial or {})
        except ValidationError:
            return True


class ColourInput(forms.TextInput):
    input_type = "color"


def range_messages(name: str) -> dict[str, str]:
    """A setting's range errors in the words agents_load uses, whichever bound was crossed."""
    kind, low, high = AGENT_SETTING_RANGES[name]
    what = "a whole number" if kind is int else "a number"
    bounds = f"from {number_words(low)} to {number_words(high)}"
    message = f"{name.replace('_', ' ').capitalize()} must be {what} {bounds}"
    message += " (blank: the model's own default)."
    return {"min_value": message, "max_value": message, "invalid": message}


class AgentForm(forms.ModelForm):
    first_model = forms.ChoiceField(
        label="First model",
        widget=CatalogSelect,
        help_text="Answers every message. Models come from the catalog (Chat models) and are offered "
        "while enabled there.",
        error_messages={
            "required": "Pick the model that answers first.",
            "invalid_choice": "%(value)s is not an enabled model of the catalog.",
        },
    )
    handoff_models = HandoffModelsField(
        label="Handoff models",
        required=False,
        widget=OrderedSelects(HANDOFF_ROWS),
        help_text="In order: the models the first may hand the reply over to. Leave a row blank for none.",
    )
    temperature = forms.FloatField(
        required=False,
        min_value=AGENT_SETTING_RANGES["temperature"][1],
        max_value=AGENT_SETTING_RANGES["temperature"][2],
        error_messages=range_messages("temperature"),
        help_text="0 to 2: lower is steadier, higher more varied. Blank: the model's own default.",
    )
    top_p = forms.FloatField(
        label="Top p",
        required=False,
        min_value=AGENT_SETTING_RANGES["top_p"][1],
        max_value=AGENT_SETTING_RANGES["top_p"][2],
        error_messages=range_messages("top_p"),
        help_text="0 to 1. Blank: the model's own default.",
    )
    max_tokens = forms.IntegerField(
        label="Max tokens",
        required=False,
        min_value=int(AGENT_SETTING_RANGES["max_tokens"][1]),
        max_value=MAX_TOKENS_CEILING,
        error_messages=range_messages("max_tokens"),
    )
    reasoning_effort = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Not set (the model's own default)"),
            *((effort, effort.capitalize()) for effort in REASONING_EFFORTS),
        ],
        help_text="For models that think before they answer.",
    )
    model_settings = SettingsByModelField(
        label="Settings per model",
        required=False,
        help_text="Advanced, optional: settings for one model only, by model id, over the ones above, "
        f"as JSON: {SETTINGS_EXAMPLE}.",
    )
    no_colour = forms.BooleanField(
        label="No colour", required=False, help_text="The agent's mark takes the page's own colour."
    )
    mcp_presets = forms.MultipleChoiceField(
        label="MCP servers from the presets",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The enabled MCP server presets.",
        error_messages={
            "invalid_choice": "%(value)s is not an enabled MCP server preset: type it under Other MCP "
            "servers to keep it."
        },
    )
    mcp_typed = forms.CharField(
        label="Other MCP servers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "vLargeTextField"}),
        help_text="One per line: a marketplace slug like org/name (optionally @version), or an https:// URL.",
    )

    class Meta:
        model = Agent
        fields = [
            "name",
            "slug",
            "description",
            "colour",
            "instructions",
            "model_settings",
            "user_may_change_model",
            "user_may_change_settings",
            "user_may_change_mcp_servers",
            "enabled",
            "is_default",
            "position",
            "groups",
        ]
        widgets = {
            "colour": ColourInput,
            "description": forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"}),
        }
        labels = {"user_may_change_mcp_servers": "User may change MCP servers"}

    class Media:
        css = {"all": ["conversations/agent-form.css"]}
        js = [forms.Script("conversations/agent-form.js", type="module")]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        agent = self.instance
        stored = list(agent.model_names) if isinstance(agent.model_names, list) else []
        rows = ChatModel.objects.values_list("name", "label", "enabled", "output_token_limit")
        catalog = {row[0]: row for row in rows}
        self.output_limits = {name: row[3] for name, row in catalog.items() if row[3]}
        self.allowed_models = {name for name, row in catalog.items() if row[2]} | {
            name for name in stored if name in catalog
        }  # a disabled model the agent has stays allowed, as the model's own check allows it
        self.unknown_models = [name for name in stored if name not in catalog]
        self._models_offer(stored, catalog)
        self._settings_fill(agent)
        self._mcp_fill(agent)
        colour = self.fields["colour"]
        colour.required = False
        colour.help_text = "The colour of the agent's mark on the chat page."
        if not agent.colour:
            self.initial["colour"] = NO_COLOUR
            self.initial.setdefault("no_colour", True)

    # --- filling the fields from the stored agent ---

    def _models_offer(self, stored: list[str], catalog: dict[str, tuple]) -> None:
        enabled = ChatModel.objects.enabled().values_list("name", "label")
        choices = [(name, f"{label} ({name})") for name, label in enabled]
        for name in stored:  # what the agent has and the catalog no longer offers, still shown
            if name in catalog and not catalog[name][2]:
                choices.append((name, f"{name} (disabled in the catalog)"))
            elif name not in catalog:
                choices.append((name, f"{name} (not in the catalog)"))
        first, handoffs = self.fields["first_model"], self.fields["handoff_models"]
        first.choices = [("", "Pick a model"), *choices]
        first.widget.output_limits = handoffs.widget.select.output_limits = self.output_limits
        handoffs.widget.select.choices = [("", "—"), *choices]
        handoffs.widget.rows = max(HANDOFF_ROWS, len(stored) - 1)
        if stored:
            self.initial.setdefault("first_model", stored[0])
            self.initial.setdefault("handoff_models", stored[1:])
        if self.unknown_models:
            names = ", ".join(self.unknown_models)
            note = format_html(
                '<strong class="agent-unknown-models">Not in the model catalog: {}.</strong> It stays shown '
                "here, but saving refuses it until it is added under Chat models (or synced) or another "
                "model is picked.",
                names,
            )
            for field in (first, handoffs):
                field.help_text = format_html("{} {}", note, field.help_text)

    def _settings_fill(self, agent: Agent) -> None:
        settings = agent.settings if isinstance(agent.settings, dict) else {}
        for name in SETTING_NAMES:
            if name in settings:
                self.initial.setdefault(name, settings[name])
        models = self._models_chosen()
        limits = [self.output_limits[name] for name in models if name in self.output_limits]
        limit = min([*limits, MAX_TOKENS_CEILING])
        field = self.fields["max_tokens"]
        field.widget.attrs.update({"max": limit, "data-ceiling": MAX_TOKENS_CEILING})
        field.help_text = format_html(
            "1 to {}, and at most the output limit of each of the agent's models in the catalog "
            "(<span data-agent-output-limit>{}</span>). Blank: the model's own default.",
            f"{MAX_TOKENS_CEILING:,}",
            f"now {limit:,}" if limits else "none known for these models",
        )

    def _models_chosen(self) -> list[str]:
        """The models as the form holds them now: posted, else stored."""
        if self.is_bound:
            first = self["first_model"].value()
            handoffs = self.fields["handoff_models"].to_python(self["handoff_models"].value())
            return [name for name in [first, *handoffs] if name]
        return list(self.instance.model_names) if isinstance(self.instance.model_names, list) else []

    def _mcp_fill(self, agent: Agent) -> None:
        presets = list(MCPServerPreset.objects.enabled().values_list("target", "label"))
        field = self.fields["mcp_presets"]
        field.choices = [(target, f"{label} ({target})") for target, label in presets]
        if not presets:
            field.help_text = "No MCP server preset is enabled: add them under MCP server presets."
        stored = agent.mcp_servers if isinstance(agent.mcp_servers, list) else []
        offered = {target for target, _ in presets}
        self.initial.setdefault("mcp_presets", [target for target in stored if target in offered])
        self.initial.setdefault("mcp_typed", "\n".join(str(t) for t in stored if t not in offered))

    # --- reading the fields back ---

    def clean_first_model(self) -> str:
        return self._model_check(self.cleaned_data["first_model"])

    def clean_handoff_models(self) -> list[str]:
        names = self.cleaned_data["handoff_models"]
        problems = []
        for name in names:
            try:
                self._model_check(name)
            except ValidationError as exc:
                problems += exc.messages
        first = self.cleaned_data.get("first_model") or self.data.get("first_model")
        repeated = sorted({name for index, name in enumerate(names) if name in [first, *names[:index]]})
        problems += [f"{name} is picked twice: a model may be in the list once." for name in repeated]
        if problems:
            raise ValidationError(problems)
        return names

    def _model_check(self, name: str) -> str:
        if name in self.unknown_models:
            raise ValidationError(
                f"{name} is not in the model catalog: add it under Chat models (or sync the catalog), "
                "or pick another model."
            )
        if name not in self.allowed_models:
            raise ValidationError(f"{name} is not an enabled model of the catalog.")
        return name

    def clean_colour(self) -> str:
        if self["no_colour"].value():
            return ""
        colour = (self.cleaned_data.get("colour") or "").strip().lower()
        if not colour:
            return ""
        if not AGENT_COLOUR_RE.fullmatch(colour):
            raise ValidationError("Pick a colour (as #rrggbb, such as #7c3aed), or tick No colour.")
        return colour

    def clean_mcp_typed(self) -> list[str]:
        targets, problems = [], []
        for number, line in enumerate(self.cleaned_data["mcp_typed"].splitlines(), start=1):
            target = line.strip()
            if not target:
                continue
            error = mcp_target_error(target)
            if error:
                problems.append(f"Line {number} ({target[:80]}): {error}")
            targets.append(target)
        if problems:
            raise ValidationError(problems)
        return targets

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        agent = self.instance
        if "first_model" in data and "handoff_models" in data:
            agent.model_names = [data["first_model"], *data["handoff_models"]]
            self._max_tokens_check(agent.model_names, data.get("max_tokens"))
        if not any(name in self.errors for name in SETTING_NAMES):
            agent.settings = {name: data[name] for name in SETTING_NAMES if data.get(name) not in (None, "")}
        if "mcp_presets" in data and "mcp_typed" in data:
            chosen = [*data["mcp_presets"], *data["mcp_typed"]]
            agent.mcp_servers = list(dict.fromkeys(chosen))  # once each, presets first
        return data

    def _max_tokens_check(self, models: list[str], max_tokens: int | None) -> None:
        if not max_tokens:
            return
        over = [name for name in models if self.output_limits.get(name, max_tokens) < max_tokens]
        if over:
            limit = min(self.output_limits[name] for name in over)
            self.add_error(
                "max_tokens",
                f"At most {limit:,} for these models: the catalog's output limit of "
                f"{', '.join(over)} is lower than {max_tokens:,}.",
            )

    def _update_errors(self, errors: ValidationError) -> None:
        """The model's own check names its stored columns; put each message under the field that writes
        it, unless that field already says what is wrong."""
        written_by = {
            "model_names": ("first_model", "handoff_models"),
            "settings": SETTING_NAMES,
            "mcp_servers": ("mcp_presets", "mcp_typed"),
        }
        moved: dict[str, list[Any]] = {}
        by_column = getattr(errors, "error_dict", None) or {NON_FIELD_ERRORS: errors.error_list}
        for column, messages in by_column.items():
            fields = written_by.get(column)
            if fields is None:
                moved.setdefault(column, []).extend(messages)
            elif not any(name in self.errors for name in fields):
                for message in messages:
                    moved.setdefault(self._field_of(column, message), []).append(message)
        if moved:
            super()._update_errors(ValidationError(moved))

    @staticmethod
    def _field_of(column: str, message: ValidationError) -> str:
        if column == "model_names":
            return "first_model"
        if column == "mcp_servers":  # the typed ones are checked line by line: a preset stored before a rule
            return "mcp_presets"
        text = " ".join(message.messages)  # a setting's message starts with its name
        return next((name for name in SETTING_NAMES if text.startswith(name)), NON_FIELD_ERRORS)
