"""Colleagues without an identity provider: invitations (an operator makes one; its link is shown once,
in the message after saving, and mailed when mail is configured) and sign-ups awaiting approval (approved,
or refused, which deletes the account)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from ..accounts.invites import invite_create, mail_configured
from ..accounts.signups import signups_approve, signups_refuse
from ..models import Invite, SignUp
from .groups import GroupCheckboxesAdmin


class InviteAddForm(forms.ModelForm):
    class Meta:
        model = Invite
        fields = ["email", "groups"]


class InviteStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("usable", "not used yet"), ("used", "used"), ("expired", "expired unused")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invite]) -> QuerySet[Invite]:
        if self.value() == "usable":
            return queryset.usable()
        if self.value() == "used":
            return queryset.filter(used_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(used_at__isnull=True, expires_at__lte=timezone.now())
        return queryset


@admin.register(Invite)
class InviteAdmin(GroupCheckboxesAdmin):
    list_display = ["__str__", "state", "invited_by", "groups_shown", "created_at", "expires_at", "used_by"]
    list_filter = [InviteStateFilter, "created_at"]
    search_fields = ["email", "invited_by__username", "used_by__username"]
    list_select_related = ["invited_by", "used_by"]
    readonly_fields = [
        "email",
        "invited_by",
        "groups_shown",
        "created_at",
        "expires_at",
        "used_at",
        "used_by",
    ]

    def get_form(
        self, request: HttpRequest, obj: Invite | None = None, **kwargs: Any
    ) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = InviteAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Invite | None = None) -> list[str]:
        if obj is not None:
            return list(self.readonly_fields)
        # A group can carry permissions, agents and budgets: putting the new account in one is what
        # Django's admin asks the permission to change users for, or an invitation would give more.
        grants_groups = request.user.has_perm("auth.change_user")
        return [field for field in InviteAddForm.Meta.fields if field != "groups" or grants_groups]

    def get_readonly_fields(self, request: HttpRequest, obj: Invite | None = None) -> list[str]:
        return [] if obj is None else list(self.readonly_fields)

    def has_change_permission(self, request: HttpRequest, obj: Invite | None = None) -> bool:
        return False  # an invitation is made, used or deleted; never edited

    def get_queryset(self, request: HttpRequest) -> QuerySet[Invite]:
        return super().get_queryset(request).prefetch_related("groups")

    def save_model(self, request: HttpRequest, obj: Invite, form: forms.ModelForm, change: bool) -> None:
        made = invite_create(
            base_url=settings.CHAT_PUBLIC_URL or request.build_absolute_uri("/"),
            invited_by=request.user,
            email=obj.email,
            groups=form.cleaned_data.get("groups", ()),
        )
        for field in Invite._meta.concrete_fields:
            setattr(obj, field.attname, getattr(made.invite, field.attname))
        messages.warning(request, f"The invitation's link, shown only now; copy it: {made.link}")
        if made.mailed:
            messages.info(request, f"The link was mailed to {obj.email}.")
        elif obj.email and mail_configured():
            messages.error(request, f"Mailing the link to {obj.email} failed: pass it on yourself.")
        elif obj.email:
            messages.info(request, "Mail is not configured (DJANGO_EMAIL_HOST): pass the link on yourself.")

    @admin.display(description="state")
    def state(self, row: Invite) -> str:
        if row.used_at is not None:
            return "used"
        return "expired unused" if row.expired else "not used yet"

    @admin.display(description="groups")
    def groups_shown(self, row: Invite) -> str:
        return ", ".join(group.name for group in row.groups.all()) or "—"


class AwaitingApprovalFilter(admin.SimpleListFilter):
    title = "approval"
    parameter_name = "awaiting"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "awaiting approval"), ("no", "approved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SignUp]) -> QuerySet[SignUp]:
        if self.value() == "yes":
            return queryset.awaiting()
        if self.value() == "no":  # approved, or made active on the user's page
            return queryset.exclude(pk__in=SignUp.objects.awaiting().values("pk"))
        return queryset


@admin.register(SignUp)
class SignUpAdmin(admin.ModelAdmin):
    """Accounts asked for on the sign-up page. Approving one lets it sign in; refusing one deletes it."""

    list_display = ["user", "email", "created_at", "approved_at", "approved_by"]
    list_filter = [AwaitingApprovalFilter, "created_at"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user", "approved_by"]
    readonly_fields = ["user", "email", "created_at", "approved_at", "approved_by"]
    fields = readonly_fields
    actions = ["approve", "refuse"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sign-ups come from the page

    def has_change_permission(self, request: HttpRequest, obj: SignUp | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SignUp | None = None) -> bool:
        return False  # refusing deletes the account, not only this row

    def has_approve_permission(self, request: HttpRequest) -> bool:
        """Approving or refusing changes who may sign in: Django's permission to change users."""
        return request.user.has_perm("auth.change_user")

    @admin.display(description="email", ordering="user__email")
    def email(self, row: SignUp) -> str:
        return row.user.email

    @admin.action(description="Approve the selected sign-ups", permissions=["approve"])
    def approve(self, request: HttpRequest, queryset: QuerySet[SignUp]) -> None:
        approved = signups_approve(queryset, approved_by=request.user)
        self.message_user(request, f"Approved {approved} sign-up(s): they may sign in now.")

    @admin.action(description="Refuse the selected sign-ups (delete their accounts)", permissions=["approve"])
    def refuse(self, request: HttpRequest, queryset: QuerySet[SignUp]) -> None:
        refused = signups_refuse(queryset)
        self.message_user(request, f"Refused {refused} sign-up(s): their accounts are deleted.")
