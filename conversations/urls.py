from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import path, re_path
from django.views.generic import RedirectView

from .openai_api import completions, models_list
from .openai_api import errors as openai_errors
from .validators import SESSION_ID_PATTERN
from .web import accounts, agents, api_keys, budget, conversations, health, mcp, my_agents, pages
from .web import attachments as attachment_views
from .web import shares as share_views

app_name = "conversations"

# What secrets.token_urlsafe makes (shares.TOKEN_BYTES of them: 22 characters), with room to grow.
SHARE_TOKEN_PATTERN = r"[A-Za-z0-9_-]{16,64}"
# An invitation's token: invites.TOKEN_BYTES through token_urlsafe, 43 characters.
INVITE_TOKEN_PATTERN = r"[A-Za-z0-9_-]{43}"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's).
    path("favicon.ico", RedirectView.as_view(url=static("conversations/favicon.svg"), permanent=True)),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    path("accounts/login/", pages.ChatLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", accounts.signup, name="signup"),
    re_path(rf"^accounts/invite/(?P<token>{INVITE_TOKEN_PATTERN})/$", accounts.invite_accept, name="invite"),
    path("", pages.chat_new, name="new"),
    # The OpenAI-compatible API (docs/openai-api.md); any other path under /v1/ answers its 404.
    path("v1/models", models_list.models_list, name="openai_models"),
    path("v1/chat/completions", completions.chat_completions, name="openai_chat_completions"),
    re_path(r"^v1/(?P<rest>.*)$", openai_errors.unknown_path, name="openai_unknown"),
    re_path(rf"^c/(?P<session_id>{SESSION_ID_PATTERN})/$", pages.chat_page, name="chat"),
    path("api/conversations/", conversations.conversation_list, name="conversation_list"),
    path("api/agents/", agents.agent_list, name="agent_list"),
    path("api/my-agents/", my_agents.my_agents, name="my_agents"),
    path("api/my-agents/<int:agent_id>/", my_agents.my_agent, name="my_agent"),
    path("api/api-keys/", api_keys.api_keys, name="api_keys"),
    path("api/api-keys/<int:key_id>/", api_keys.api_key, name="api_key"),
    path("api/budget/", budget.budget_left, name="budget"),
    path("api/attachments/", attachment_views.attachment_upload, name="attachment_upload"),
    path("api/attachments/<uuid:attachment_id>/", attachment_views.attachment_download, name="attachment"),
    path("api/mcp-servers/check", mcp.mcp_servers_check, name="mcp_servers_check"),
    path("api/mcp-credentials/", mcp.mcp_credentials_list, name="mcp_credentials_list"),
    path("api/mcp-credentials/<int:preset_id>/", mcp.mcp_credentials_one, name="mcp_credentials_one"),
    re_path(
        rf"^c/(?P<session_id>{SESSION_ID_PATTERN})/rename$", conversations.conversation_rename, name="rename"
    ),
    re_path(
        rf"^c/(?P<session_id>{SESSION_ID_PATTERN})/delete$", conversations.conversation_delete, name="delete"
    ),
    re_path(rf"^c/(?P<session_id>{SESSION_ID_PATTERN})/pin$", conversations.conversation_pin, name="pin"),
    re_path(rf"^c/(?P<session_id>{SESSION_ID_PATTERN})/share$", share_views.conversation_share, name="share"),
    re_path(rf"^s/(?P<token>{SHARE_TOKEN_PATTERN})/$", share_views.shared_page, name="shared"),
    re_path(
        rf"^s/(?P<token>{SHARE_TOKEN_PATTERN})/continue$", share_views.shared_continue, name="shared_continue"
    ),
    re_path(
        rf"^c/(?P<session_id>{SESSION_ID_PATTERN})/export\.(?P<fmt>md|json)$",
        conversations.conversation_export,
        name="export",
    ),
]
