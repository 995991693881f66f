"""Accounts an operator allowed without an identity provider: invitations (a one-time link, kept only as
its SHA-256) and sign-ups that wait for an operator's approval."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone


class InviteQuerySet(models.QuerySet):
    def usable(self) -> InviteQuerySet:
        """Invitations not used yet and not expired."""
        return self.filter(used_at__isnull=True, expires_at__gt=timezone.now())


class Invite(models.Model):
    """One invitation: its link makes one account, once, before `expires_at`. The link's token itself is
    never stored, only its SHA-256."""

    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="invites_sent",
        editable=False,
        help_text="Empty: made with manage.py invite.",
    )
    email = models.EmailField(blank=True, help_text="Where the link is mailed (when mail is configured).")
    groups = models.ManyToManyField(Group, blank=True, help_text="Groups the new account joins.")
    expires_at = models.DateTimeField(db_index=True, editable=False)
    used_at = models.DateTimeField(null=True, blank=True, db_index=True, editable=False)
    used_by = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="invite_accepted",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InviteQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "invitation"

    def __str__(self) -> str:
        return f"Invitation for {self.email}" if self.email else f"Invitation {self.pk}"

    @property
    def expired(self) -> bool:
        return self.expires_at <= timezone.now()


class SignUpQuerySet(models.QuerySet):
    def awaiting(self) -> SignUpQuerySet:
        """Sign-ups no operator approved yet, whose accounts are still inactive (one made active on its
        user's admin page was let in as surely as by the approval action)."""
        return self.filter(approved_at__isnull=True, user__is_active=False)


class SignUp(models.Model):
    """An account asked for on the sign-up page: inactive until an operator approves it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signup")
    approved_at = models.DateTimeField(null=True, blank=True, db_index=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = SignUpQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "sign-up"

    def __str__(self) -> str:
        return f"Sign-up of {self.user}"
