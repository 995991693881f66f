"""ASGI entry point: HTTP goes to Django, WebSockets through origin and auth checks to the chat consumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from conversations.routing import websocket_urlpatterns  # noqa: E402
from conversations.socket_auth import handshake_auth_stack  # noqa: E402


def allowed_websocket_origins() -> list[str]:
    """Handshake origins: the ALLOWED_HOSTS (any scheme) and CSRF_TRUSTED_ORIGINS (as given).

    `*.example.com` in CSRF_TRUSTED_ORIGINS becomes Channels' `.example.com` (the domain and its subdomains).
    """
    trusted = [origin.replace("://*.", "://.") for origin in settings.CSRF_TRUSTED_ORIGINS]
    return [*settings.ALLOWED_HOSTS, *trusted]


websocket_app = handshake_auth_stack(URLRouter(websocket_urlpatterns))

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginValidator(websocket_app, allowed_websocket_origins()),
    }
)
