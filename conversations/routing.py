from django.urls import re_path

from .consumers import ChatConsumer, InvalidSessionConsumer
from .owners import API_SOCKET, PAGE_SOCKET
from .validators import SESSION_ID_PATTERN

websocket_urlpatterns = [
    re_path(
        rf"^ws/chat/(?P<session_id>{SESSION_ID_PATTERN})/$",
        ChatConsumer.as_asgi(),
        kwargs={"path_kind": PAGE_SOCKET},
    ),
    re_path(
        rf"^ws/(?P<session_id>{SESSION_ID_PATTERN})/?$",
        ChatConsumer.as_asgi(),
        kwargs={"path_kind": API_SOCKET},
    ),
    re_path(r"^ws/", InvalidSessionConsumer.as_asgi()),
]
