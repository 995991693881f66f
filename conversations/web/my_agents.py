"""A signed-in user's own agents over HTTP ("My agents"): list and build (`/api/my-agents/`), change and
delete one (`/api/my-agents/<id>/`). Another user's agent answers as a missing one: 404. CSRF applies
as to every form; with CHAT_USER_AGENTS off every request is refused."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_http_methods

from ..agents import own
from ..exceptions import InvalidAgent, LoginRequired, NotFound, UserAgentsOff
from .errors import errors_answered


def _builder(request: HttpRequest) -> int:
    """The id of the user who may build agents; raise for a server that lets none, or a visitor."""
    if not own.own_agents_on():
        raise UserAgentsOff()
    if not request.user.is_authenticated:
        raise LoginRequired("Sign in to build agents of your own.")
    return request.user.pk


def _body(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body or b"null")
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested thousands deep
        raise InvalidAgent(own.SHAPE) from exc


@require_http_methods(["GET", "POST"])
@errors_answered
def my_agents(request: HttpRequest) -> HttpResponse:
    """GET: the user's agents, whole, and how many they may keep. POST: build one (201, the agent)."""
    user_id = _builder(request)
    if request.method == "GET":
        return JsonResponse({"agents": own.own_agents_listed(user_id), "max": settings.CHAT_USER_AGENTS_MAX})
    return JsonResponse(own.own_agent_create(user_id, _body(request)), status=201)


@require_http_methods(["PUT", "DELETE"])
@errors_answered
def my_agent(request: HttpRequest, agent_id: int) -> HttpResponse:
    """PUT: replace one of the user's agents with the body's fields (the agent). DELETE: remove it."""
    user_id = _builder(request)
    if request.method == "DELETE":
        if not own.own_agent_delete(user_id, agent_id):
            raise NotFound()
        return JsonResponse({"deleted": True})
    return JsonResponse(own.own_agent_update(user_id, agent_id, _body(request)))
