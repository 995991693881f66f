"""A provider's groups claim made into Django groups at each sign-in: the memberships it names are added,
the ones it gave before and names no more are removed, and those given by hand are left alone; the claim
may also make the user staff or superuser (CHAT_OIDC_GROUPS_CLAIM and the settings beside it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction

from ..models import ProviderGroupGrant

# A claim naming more groups than this is cut (a sign-in's work stays bounded whatever the provider sends).
CLAIM_VALUES_MAX = 200
GROUP_NAME_MAX = 150  # Django's Group.name


def claim_values(claims: Mapping[str, Any], claim: str) -> list[str]:
    """Return the claim's values as strings: a list of them, or one string (a space-separated list, as some
    providers send roles); anything else is none."""
    value = claims.get(claim)
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str) and item][:CLAIM_VALUES_MAX]


def group_names(values: list[str]) -> set[str]:
    """Return the group names the claim's values map to (CHAT_OIDC_GROUP_MAP; an unmapped value as it is,
    or not at all with CHAT_OIDC_GROUPS_UNMAPPED off).

    An unmapped value never names a group that holds permissions: whoever may make groups at the provider
    (some let any user) could otherwise name one after a local group of admin rights. Only the operator's
    map leads into such a group."""
    mapping = settings.CHAT_OIDC_GROUP_MAP
    mapped = {mapping[value] for value in values if value in mapping}
    unmapped = set()
    if settings.CHAT_OIDC_GROUPS_UNMAPPED:
        unmapped = {value for value in values if value not in mapping and len(value) <= GROUP_NAME_MAX}
    privileged = Group.objects.filter(name__in=unmapped, permissions__isnull=False).values_list(
        "name", flat=True
    )
    return mapped | (unmapped - set(privileged))


@transaction.atomic
def provider_groups_sync(*, user: Any, claims: Mapping[str, Any]) -> None:
    """Bring the user's groups from the provider, and their staff and superuser flags when configured, in
    line with the claims of this sign-in. Without CHAT_OIDC_GROUPS_CLAIM, nothing changes."""
    claim = settings.CHAT_OIDC_GROUPS_CLAIM
    if not claim:
        return
    values = claim_values(claims, claim)
    wanted = group_names(values)
    grants = ProviderGroupGrant.objects.filter(user=user).select_related("group")
    given = {grant.group.name: grant for grant in grants}
    for name, grant in given.items():
        if name not in wanted:
            user.groups.remove(grant.group)
            grant.delete()
    held = set(user.groups.values_list("name", flat=True))
    for name in wanted - held:
        group, _ = Group.objects.get_or_create(name=name)
        user.groups.add(group)
        ProviderGroupGrant.objects.get_or_create(user=user, group=group)
    flags_sync(user=user, values=set(values))


def flags_sync(*, user: Any, values: set[str]) -> None:
    """Set the staff and superuser flags from the claim's values. CHAT_OIDC_STAFF_VALUE set: the provider
    decides staff; CHAT_OIDC_SUPERUSER_VALUE set: it decides both (its superuser is staff, to reach the
    admin, and loses staff with superuser unless the staff value stays). Unset, the admin decides."""
    staff_value, superuser_value = settings.CHAT_OIDC_STAFF_VALUE, settings.CHAT_OIDC_SUPERUSER_VALUE
    wanted = {}
    if superuser_value:
        wanted["is_superuser"] = superuser_value in values
    if staff_value or superuser_value:
        wanted["is_staff"] = bool(staff_value and staff_value in values) or wanted.get("is_superuser", False)
    changed = [field for field, value in wanted.items() if getattr(user, field) != value]
    for field in changed:
        setattr(user, field, wanted[field])
    if changed:
        user.save(update_fields=changed)
