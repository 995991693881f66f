"""GET /v1/models: what the request's key may use, as OpenAI lists models."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ..apikeys.offers import key_offers
from .auth import request_key
from .cors import cors_answered
from .errors import methods_only, openai_errors_answered


@csrf_exempt  # a key in a header, never a cookie: nothing a third-party page could ride on
@cors_answered
@openai_errors_answered
@methods_only("GET")
def models_list(request: HttpRequest) -> HttpResponse:
    offers = key_offers(request_key(request))
    data = [
        {"id": offer.id, "object": "model", "created": offer.created, "owned_by": offer.owned_by}
        for offer in offers
    ]
    return JsonResponse({"object": "list", "data": data})
