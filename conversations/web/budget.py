"""What a signed-in user may still spend (`GET /api/budget/`): the page reads it to say what is left when
it runs low. Anyone else, and a user no budget caps, gets `{"allowance": null}`."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from ..teams.budgets import allowance_as_dict, user_allowance
from .errors import errors_answered


@require_GET
@errors_answered
def budget_left(request: HttpRequest) -> HttpResponse:
    """`{"allowance": {subject, unit, period, amount, left, resets_at, low, spent_up} | null}`."""
    if not request.user.is_authenticated:
        return JsonResponse({"allowance": None})
    return JsonResponse({"allowance": allowance_as_dict(user_allowance(user_id=request.user.pk))})
