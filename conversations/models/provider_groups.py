"""Group memberships an identity provider gave: a sign-in removes only these, so a membership given by
hand in the admin stays whatever the provider says."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models


class ProviderGroupGrant(models.Model):
    """A user's membership of a group that a single sign-on added (conversations/accounts/provider_groups.py)
    and a later one takes away when the provider stops naming it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_group_grants"
    )
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="provider_grants")
    granted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "group"], name="provider_group_grant_unique")]
        verbose_name = "group from the identity provider"
        verbose_name_plural = "groups from the identity provider"

    def __str__(self) -> str:
        return f"{self.user} in {self.group} (from the identity provider)"
