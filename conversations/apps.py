from typing import Any

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.contrib.admin.sites import AdminSite
from django.http import HttpRequest
from django.template.response import TemplateResponse


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        # Register the system checks, the sign-in hand-over and the sign-out's end of sockets.
        from . import checks  # noqa: F401
        from .accounts import handover  # noqa: F401
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


class ChatAdminConfig(admin_apps.AdminConfig):
    """Django's admin (its app), with ChatAdminSite as its site. Named in INSTALLED_APPS, never the
    default of this module: that is ConversationsConfig."""

    default = False
    default_site = "conversations.apps.ChatAdminSite"
