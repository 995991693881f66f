"""MCP credentials: the shared ones an operator attaches to a preset, a signed-in user's own, and which
of them a turn's servers are given. Values are only ever stored sealed (sealing.py) and only ever leave
the server encrypted to the authorisation server's key (mcp_wire.py); nothing here returns them to a
page, a log or an export: what is shown is the names of the values, never a character of one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from ..exceptions import McpCredentialsRequired
from ..models import MCPCredential, MCPServerPreset
from ..validators import CREDENTIAL_NAME_RE
from .sealing import SealBroken, reseal, seal, unseal

MAX_VALUE_CHARS = 8192
MAX_VALUES = 16

# What a turn's servers are given: a target's credential values by name.
TurnCredentials = dict[str, dict[str, str]]


def values_clean(values: Any, *, names: Sequence[str] = ()) -> dict[str, str]:
    """`values` as credential values: an object of names to non-empty strings (exactly `names` when
    given). Raise ValidationError naming what is wrong (never a value)."""
    if not isinstance(values, Mapping) or not values:
        raise ValidationError('Credentials are an object of names to values, e.g. {"api_key": "…"}.')
    if len(values) > MAX_VALUES:
        raise ValidationError(f"At most {MAX_VALUES} values.")
    cleaned: dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not CREDENTIAL_NAME_RE.fullmatch(name):
            raise ValidationError("A credential's name is a letter, then letters, digits, - or _.")
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_VALUE_CHARS:
            raise ValidationError(
                f"{name}: a value is a non-empty text of at most {MAX_VALUE_CHARS} characters."
            )
        cleaned[name] = value.strip()
    if names and set(cleaned) != set(names):
        raise ValidationError(f"Give exactly these values: {', '.join(names)}.")
    return cleaned


def preset_credentials_set(preset: MCPServerPreset, values: dict[str, str] | None) -> None:
    """Attach `values` (cleaned) to `preset` as its shared credentials, or remove them (None); the
    caller saves the preset."""
    preset.credentials_sealed = seal(values) if values else ""


def preset_credential_names(preset: MCPServerPreset) -> list[str]:
    """The names of the preset's shared values (for the admin), [] when it has none or they no longer
    open (their key was dropped)."""
    if not preset.credentials_sealed:
        return []
    try:
        return sorted(unseal(preset.credentials_sealed))
    except SealBroken:
        return []


def user_credentials_save(*, user_id: int, preset: MCPServerPreset, values: Any) -> MCPCredential:
    """Store the user's own values for `preset` (replacing any), checked against the names it asks.
    Raise ValidationError for a preset that asks none, or values that are not those."""
    if not preset.user_credentials:
        raise ValidationError("That MCP server does not take credentials of your own.")
    cleaned = values_clean(values, names=preset.credential_names)
    credential, _ = MCPCredential.objects.update_or_create(
        user_id=user_id, preset=preset, defaults={"sealed": seal(cleaned), "names": sorted(cleaned)}
    )
    return credential


def user_credentials_delete(*, user_id: int, preset_id: int) -> bool:
    """Remove the user's own values for the preset; whether there were any."""
    deleted, _ = MCPCredential.objects.filter(user_id=user_id, preset_id=preset_id).delete()
    return bool(deleted)


def user_credentials_listed(user_id: int | None) -> list[dict[str, Any]]:
    """The enabled presets that ask each user for credentials, and whether this user saved theirs (and
    when): what the page shows beside those servers."""
    presets = list(MCPServerPreset.objects.enabled().filter(user_credentials=True))
    saved = {}
    if user_id is not None and presets:
        saved = {
            row.preset_id: row
            for row in MCPCredential.objects.filter(user_id=user_id, preset__in=presets).only(
                "preset_id", "updated_at"
            )
        }
    return [
        {
            "id": preset.pk,
            "target": preset.target,
            "label": preset.label,
            "names": list(preset.credential_names),
            "saved": preset.pk in saved,
            "updated_at": saved[preset.pk].updated_at.isoformat() if preset.pk in saved else None,
        }
        for preset in presets
    ]


def credentialed_presets() -> dict[str, MCPServerPreset]:
    """The enabled presets that carry credentials (shared, or asked of each user), by target: one query
    per batch of turns that name MCP servers."""
    rows = MCPServerPreset.objects.enabled().exclude(credentials_sealed="", user_credentials=False)
    return {preset.target: preset for preset in rows}


def turn_credentials(
    servers: Sequence[str], *, presets: Mapping[str, MCPServerPreset], user_id: int | None
) -> TurnCredentials:
    """The credential values each of `servers` is given on a turn of `user_id` (None: not signed in):
    the user's own for a preset that asks for them, else the preset's shared ones.

    Raise McpCredentialsRequired for a preset that asks for the user's own when there are none and it has
    no shared ones to fall back on.
    """
    chosen = [presets[target] for target in servers if target in presets]
    asking = [preset for preset in chosen if preset.user_credentials]
    own: dict[int, str] = {}
    if asking and user_id is not None:
        own = dict(
            MCPCredential.objects.filter(user_id=user_id, preset__in=asking).values_list(
                "preset_id", "sealed"
            )
        )
    credentials: TurnCredentials = {}
    for preset in chosen:
        sealed = own.get(preset.pk) or preset.credentials_sealed
        if not sealed:
            raise McpCredentialsRequired(
                f"{preset.label} needs your credentials: "
                + ("add them beside it first." if user_id is not None else "sign in and add them first.")
            )
        try:
            credentials[preset.target] = unseal(sealed)
        except SealBroken as exc:
            raise McpCredentialsRequired(
                f"{preset.label}'s credentials can no longer be read; they must be entered again."
            ) from exc
    return credentials


@transaction.atomic
def credentials_reseal() -> tuple[int, int]:
    """Seal every stored credential again with the newest key (rotation), all or nothing; return how
    many presets' and users' credentials were resealed. Raise SealBroken if any no longer opens."""
    presets = list(MCPServerPreset.objects.select_for_update().exclude(credentials_sealed=""))
    for preset in presets:
        preset.credentials_sealed = reseal(preset.credentials_sealed)
    MCPServerPreset.objects.bulk_update(presets, ["credentials_sealed"])
    own = list(MCPCredential.objects.select_for_update())
    for credential in own:
        credential.sealed = reseal(credential.sealed)
    MCPCredential.objects.bulk_update(own, ["sealed"])
    return len(presets), len(own)
