"""Invitations: made by an operator (the link returned once, only its SHA-256 kept), mailed when mail is
configured, and accepted once, before they expire, by the one who picks the account's name and password."""

from __future__ import annotations

import hashlib
import logging
import secrets
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from ..exceptions import InviteUnusable, NotFound, PasswordAccountsOff
from ..models import Invite
from .passwords import password_account_create

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32  # token_urlsafe(32): 43 characters, 256 bits


@dataclass(frozen=True)
class InviteMade:
    """A new invitation, its link (shown only now) and whether the link was mailed."""

    invite: Invite
    link: str
    mailed: bool


def token_hash(token: str) -> str:
    """What an invitation keeps of its token: one SHA-256 (256 random bits need nothing slower)."""
    return hashlib.sha256(token.encode()).hexdigest()


def mail_configured() -> bool:
    """True when the server may send mail: DJANGO_EMAIL_HOST is set (whatever the backend, so the
    test suite's in-memory outbox stands in for it)."""
    return bool(settings.EMAIL_HOST)


def invite_link(base_url: str, token: str) -> str:
    """The invitation's address under `base_url` (`https://chat.example.com`)."""
    return base_url.rstrip("/") + reverse("conversations:invite", kwargs={"token": token})


@transaction.atomic
def invite_create(
    *,
    base_url: str,
    invited_by: AbstractBaseUser | None = None,
    email: str = "",
    groups: Iterable[Group] = (),
) -> InviteMade:
    """Make an invitation valid CHAT_INVITE_DAYS, joining `groups`; mail its link to `email` when one is
    given and mail is configured. Return it with its link, which nothing can show again."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    invite = Invite(
        token_hash=token_hash(token),
        invited_by=invited_by,
        email=email.strip(),
        expires_at=timezone.now() + timedelta(days=settings.CHAT_INVITE_DAYS),
    )
    invite.full_clean()
    invite.save()
    invite.groups.set(groups)
    link = invite_link(base_url, token)
    mailed = bool(invite.email) and mail_configured() and _invite_mail(invite, link)
    return InviteMade(invite=invite, link=link, mailed=mailed)


def _invite_mail(invite: Invite, link: str) -> bool:
    """Send the link to the invitation's address; False (logged) when the mail server refused or failed:
    the operator still has the link to pass on."""
    days = settings.CHAT_INVITE_DAYS
    inviter = f"{invite.invited_by.get_username()} invites you" if invite.invited_by else "You are invited"
    body = (
        f"{inviter} to Dedalus Chat.\n\n"
        f"Open this link to choose your username and password:\n{link}\n\n"
        f"It works once, within {days:g} days ({invite.expires_at:%Y-%m-%d %H:%M} UTC).\n"
    )
    try:
        send_mail("Your invitation to Dedalus Chat", body, None, [invite.email])
    except (smtplib.SMTPException, OSError):
        logger.warning("invitation %s not mailed", invite.pk, exc_info=True)
        return False
    return True


def invite_of_token(token: str) -> Invite:
    """The invitation of a link's token. Raise NotFound for none, InviteUnusable for one used or expired,
    PasswordAccountsOff while passwords sign nobody in (the account it makes would have only one)."""
    return _invite_usable(Invite.objects.all(), token)


def _invite_usable(invites: QuerySet[Invite], token: str) -> Invite:
    """The invitation of `token` among `invites`, refused as `invite_of_token` says."""
    if not settings.CHAT_PASSWORD_LOGIN:
        raise PasswordAccountsOff()
    invite = invites.filter(token_hash=token_hash(token)).first()
    if invite is None:
        raise NotFound()
    if invite.used_at is not None or invite.expired:
        raise InviteUnusable()
    return invite


@transaction.atomic
def invite_accept(*, token: str, username: str, password: str) -> AbstractBaseUser:
    """Make the invitation's account (active, with its address and groups) and mark the invitation used,
    all or nothing. The invitation's row is locked, so of two accepts at once one makes the account and
    the other raises InviteUnusable; NotFound for an unknown token, UsernameTaken for a name taken
    meanwhile; PasswordAccountsOff as invite_of_token."""
    invite = _invite_usable(Invite.objects.select_for_update(), token)
    user = password_account_create(username=username, email=invite.email, password=password)
    user.groups.set(invite.groups.all())
    invite.used_at, invite.used_by = timezone.now(), user
    invite.save(update_fields=["used_at", "used_by"])
    return user
