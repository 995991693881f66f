"""The API's model list (`GET /v1/models`): read whole for the catalog, or asked for to prove the
service answers (the readiness check). Blocking calls, on the process's SDK client."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from ..exceptions import UpstreamError
from .client import sdk_client
from .errors import CatalogUnavailable, catalog_unavailable, readiness_problem, sdk_errors


def models_list() -> list[dict[str, Any]]:
    """The API's models as JSON objects (with the fields the SDK's types do not name, e.g. pricing).

    Raise CatalogUnavailable when DEDALUS_API_KEY is unset or the API cannot be read."""
    if not settings.DEDALUS_API_KEY:
        raise CatalogUnavailable("DEDALUS_API_KEY is not set.")
    client = sdk_client(timeout=settings.CHAT_READY_UPSTREAM_TIMEOUT * 5, max_retries=1)
    try:
        with sdk_errors():
            return [model.to_dict() for model in client.models.list().data]
    except UpstreamError as exc:
        raise catalog_unavailable(exc) from exc.__cause__


def upstream_problem() -> str | None:
    """Ask Dedalus for its model list (blocking, CHAT_READY_UPSTREAM_TIMEOUT, no retry); return what is
    wrong, or None."""
    if not settings.DEDALUS_API_KEY:
        return "DEDALUS_API_KEY is not set"
    client = sdk_client(timeout=settings.CHAT_READY_UPSTREAM_TIMEOUT, max_retries=0)
    try:
        with sdk_errors():
            client.models.list()
    except UpstreamError as exc:
        return readiness_problem(exc)
    return None
