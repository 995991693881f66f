"""Sign-up with an operator's approval (CHAT_SIGNUP=approval): an account asked for on the page is made
inactive, so it cannot sign in, until an operator approves it; or the operator refuses it, which deletes
it."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..exceptions import SignUpsFull
from ..models import SignUp
from .passwords import password_account_create


def signup_open() -> bool:
    """True when anyone may ask for an account on the sign-up page: CHAT_SIGNUP=approval, while
    passwords sign people in (its accounts have no other way in)."""
    return settings.CHAT_SIGNUP == "approval" and settings.CHAT_PASSWORD_LOGIN


@transaction.atomic
def signup_create(*, username: str, email: str, password: str) -> SignUp:
    """Make an inactive account and its sign-up, awaiting approval. Raise SignUpsFull when
    CHAT_SIGNUP_PENDING_MAX sign-ups wait already, UsernameTaken for a name taken meanwhile."""
    limit = settings.CHAT_SIGNUP_PENDING_MAX
    if limit and SignUp.objects.awaiting().count() >= limit:
        raise SignUpsFull()
    user = password_account_create(username=username, email=email, password=password, active=False)
    return SignUp.objects.create(user=user)


@transaction.atomic
def signups_approve(signups: QuerySet[SignUp], *, approved_by: AbstractBaseUser) -> int:
    """Approve the sign-ups still awaiting it: their accounts may sign in from now on. Return how many."""
    awaiting = list(signups.awaiting().select_for_update().values_list("pk", "user_id"))
    get_user_model()._default_manager.filter(pk__in=[user_id for _, user_id in awaiting]).update(
        is_active=True
    )
    SignUp.objects.filter(pk__in=[pk for pk, _ in awaiting]).update(
        approved_at=timezone.now(), approved_by=approved_by
    )
    return len(awaiting)


@transaction.atomic
def signups_refuse(signups: QuerySet[SignUp]) -> int:
    """Delete the accounts of the sign-ups still awaiting approval (an approved one is an account like any
    other, removed as users are). Return how many."""
    user_ids = list(signups.awaiting().values_list("user_id", flat=True))
    get_user_model()._default_manager.filter(pk__in=user_ids, is_active=False).delete()
    return len(user_ids)


def signup_awaits_approval(*, username: str, password: str) -> bool:
    """True when `username` is a sign-up awaiting approval and `password` is its own: a sign-in that
    failed only because no operator approved the account yet."""
    signup = SignUp.objects.awaiting().select_related("user").filter(user__username=username).first()
    return signup is not None and signup.user.check_password(password)


def signups_awaiting_count() -> int:
    return SignUp.objects.awaiting().count()
