from django.urls import re_path

from .consumers import ChatConsumer, InvalidSessionConsumer
from .validators import SESSION_ID_PATTERN

websocket_urlpatterns = [
    re_path(rf"^ws/chat/(?P<session_id>{SESSION_ID_PATTERN})/$", ChatConsumer.as_asgi()),
    re_path(rf"^ws/(?P<session_id>{SESSION_ID_PATTERN})/?$", ChatConsumer.as_asgi()),
    re_path(r"^ws/", InvalidSessionConsumer.as_asgi()),
]
