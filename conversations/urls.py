from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import path, re_path
from django.views.generic import RedirectView

from .validators import SESSION_ID_PATTERN
from .web import attachments as attachment_views
from .web import shares as share_views
from .web import views

app_name = "conversations"

# What secrets.token_urlsafe makes (shares.TOKEN_BYTES of them: 22 characters), with room to grow.
SHARE_TOKEN_PATTERN = r"[A-Za-z0-9_-]{16,64}"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's).
    path("favicon.ico", RedirectView.as_view(url=static("conversations/favicon.svg"), permanent=True)),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("accounts/login/", views.ChatLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.chat_new, name="new"),
    re_path(rf"^c/(?P<session_id>{SESSION_ID_PATTERN})/$", views.chat_page, name="chat"),
    path("api/conversations/", views.conversation_list, name="conversation_list"),
    path("api/agents/", views.agent_list, name="agent_list"),
    path("api/attachments/", attachment_views.attachment_upload, name="attachment_upload"),
    path("api/attachments/<uuid:attachment_id>/", attachment_views.attachment_download, name="attachment"),
    path("api/mcp-servers/check", views.mcp_servers_check, name="mcp_servers_check"),
    path("api/mcp-credentials/", views.mcp_credentials_list, name="mcp_credentials_list"),
    path("api/mcp-credentials/<int:preset_id>/", views.mcp_credentials_one, name="mcp_credentials_one"),
    re_path(rf"^c/(?P<session_id>{SESSION_ID_PATTERN})/rename$", views.conversation_rename, name="rename"),
    re_path(rf"^c/(?P<session_id>{SESSION_ID_PATTERN})/delete$", views.conversation_delete, name="delete"),
    re_path(rf"^c/(?P<session_id>{SESSION_ID_PATTERN})/pin$", views.conversation_pin, name="pin"),
    re_path(rf"^c/(?P<session_id>{SESSION_ID_PATTERN})/share$", share_views.conversation_share, name="share"),
    re_path(rf"^s/(?P<token>{SHARE_TOKEN_PATTERN})/$", share_views.shared_page, name="shared"),
    re_path(
        rf"^s/(?P<token>{SHARE_TOKEN_PATTERN})/continue$", share_views.shared_continue, name="shared_continue"
    ),
    re_path(
        rf"^c/(?P<session_id>{SESSION_ID_PATTERN})/export\.(?P<fmt>md|json)$",
        views.conversation_export,
        name="export",
    ),
]
