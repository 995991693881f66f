"""The agents the page (or an API client) may pick from."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from ..chat import selectors
from ..exceptions import LoginRequired
from .errors import errors_answered


@require_GET
@errors_answered
def agent_list(request: HttpRequest) -> JsonResponse:
    """The agents the requester may pick (every enabled one they may use: an anonymous requester is in
    no group; with CHAT_REQUIRE_LOGIN, for a signed-in user only). Cookie-less API clients may chat,
    so they may list them too."""
    if settings.CHAT_REQUIRE_LOGIN and not request.user.is_authenticated:
        raise LoginRequired("Sign in to see the agents.")
    user_id = request.user.pk if request.user.is_authenticated else None
    return JsonResponse({"agents": selectors.agents_enabled(user_id)})
