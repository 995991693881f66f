from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.contrib.admin import apps as admin_apps
from django.contrib.admin.sites import AdminSite
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        # Register the system checks, the sign-in hand-over, the provider's groups at a single sign-on and
        # the sign-out's end of sockets.
        from . import checks  # noqa: F401
        from .accounts import handover, single_sign_on  # noqa: F401
        from .relay import (
            cluster,
            instance,
            logouts,  # noqa: F401
        )

        instance.hooks_install(cluster.HOOKS)


class ChatAdminSite(AdminSite):
    """The admin, named as the product, whose home page says what a fresh install still lacks."""

    site_header = "Dedalus Chat"
    site_title = "Dedalus Chat admin"
    index_title = "Run the chat server"
    # The sidebar repeats the index's list of models and takes 300 px from every list: without it, the
    # lists' columns fit a 1280 px window (the breadcrumbs and the index still lead everywhere).
    enable_nav_sidebar = False

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from .admin.first_steps import first_steps

        return super().index(request, {"first_steps": first_steps(), **(extra_context or {})})

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The admin's password form, or the chat's sign-in page (its providers) when passwords are off."""
        from django.contrib.auth.views import redirect_to_login

        if not settings.CHAT_PASSWORD_LOGIN:
            return redirect_to_login(request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index"))
        return super().login(request, extra_context)


class ChatAdminConfig(admin_apps.AdminConfig):
    """Django's admin (its app), with ChatAdminSite as its site. Named in INSTALLED_APPS, never the
    default of this module: that is ConversationsConfig."""

    default = False
    default_site = "conversations.apps.ChatAdminSite"
