"""ASGI entry point: HTTP goes through the body limit to Django, WebSockets through origin and auth checks to
the chat consumer. Importing it also gives Daphne its bounded request (chatproject/daphne_requests.py)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from chatproject import daphne_requests  # noqa: E402
from chatproject.request_bodies import BodyLimitMiddleware  # noqa: E402
from conversations.accounts.socket_auth import handshake_auth_stack  # noqa: E402
from conversations.routing import websocket_urlpatterns  # noqa: E402


def allowed_websocket_origins() -> list[str]:
    """Handshake origins: the ALLOWED_HOSTS (any scheme) and CSRF_TRUSTED_ORIGINS (as given).

    `*.example.com` in CSRF_TRUSTED_ORIGINS becomes Channels' `.example.com` (the domain and its subdomains).
    """
    trusted = [origin.replace("://*.", "://.") for origin in settings.CSRF_TRUSTED_ORIGINS]
    return [*settings.ALLOWED_HOSTS, *trusted]


# Every way this project runs Daphne imports this module before Daphne listens (see daphne_requests).
daphne_requests.install()

websocket_app = handshake_auth_stack(URLRouter(websocket_urlpatterns))

application = ProtocolTypeRouter(
    {
        "http": BodyLimitMiddleware(django_asgi_app),
        "websocket": OriginValidator(websocket_app, allowed_websocket_origins()),
    }
)
