"""What the project makes of Dedalus' failures, in one place: an error answer, a broken or late stream or
request, a failed SDK call become UpstreamError (the code and text a client sees), and what an operator's
tool is told (CatalogUnavailable, the readiness check's problem) is read off that. Never our request or
our key.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import dedalus_labs
import orjson
from django.conf import settings

from ..exceptions import UpstreamError, UpstreamRateLimited


class CatalogUnavailable(Exception):
    """The API's model list could not be read; the message says why (never the key)."""


async def status_error(response: aiohttp.ClientResponse) -> UpstreamError:
    """The error of an HTTP error answer: the upstream's own words (never our request or key), retried
    for 429 and 5xx, after its Retry-After when it gives one."""
    try:
        answer: Any = orjson.loads(await response.read())
    except (orjson.JSONDecodeError, aiohttp.ClientError):
        answer = None
    detail = ""
    if isinstance(answer, dict):
        error = answer.get("error", answer)
        detail = str(error.get("message", "") if isinstance(error, dict) else error)
    detail = detail[:300] or (response.reason or "")
    if response.status == 402:  # the account, not the request: nothing a retry or the user can mend
        return UpstreamError(
            redact(
                "The Dedalus account's balance or quota is used up; an administrator must add credit "
                f"or raise the quota ({detail})."
            ),
            code="upstream_payment_required",
        )
    message = redact(f"The model service answered {response.status}: {detail}")
    retry_after = _retry_after(response.headers.get("retry-after"))
    if response.status == 429:  # a code of its own: an API client is told to slow down, and when
        return UpstreamRateLimited(message, retry_after=retry_after)
    return UpstreamError(
        message, retryable=response.status >= 500, retry_after=retry_after, status=response.status
    )


def _retry_after(value: str | None) -> float | None:
    """The seconds a Retry-After header says (None: none, or a date or text this does not read)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is None or math.isfinite(seconds) else None


def stream_broken(exc: aiohttp.ClientError) -> UpstreamError:
    """The error of a reply whose connection failed: retried (before its first token)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError("Could not reach the model service.", retryable=True)
    return UpstreamError("The model service broke off the reply.", retryable=True)


@contextmanager
def request_errors() -> Iterator[None]:
    """Run one short request over aiohttp (not a stream): a late, failed or unreadable answer comes out
    as UpstreamError (an error status is the caller's to raise, with `status_error`)."""
    try:
        yield
    except TimeoutError as exc:
        raise UpstreamError("The model service was too slow.", code="upstream_timeout") from exc
    except (aiohttp.ClientError, orjson.JSONDecodeError) as exc:
        raise UpstreamError(f"The model service failed: {type(exc).__name__}.") from exc


def stream_error(error: Any) -> UpstreamError:
    """The error of an `error` event in the stream."""
    message = error.get("message") if isinstance(error, dict) else error
    return UpstreamError(redact(f"The model service reported an error: {str(message)[:300]}"))


def timeout_error(first_token_seen: bool, total_exceeded: bool) -> UpstreamError:
    """The error of a reply whose deadline passed: the whole reply's, the next token's or the first's."""
    if total_exceeded:
        limit = settings.CHAT_UPSTREAM_TOTAL_TIMEOUT
        return UpstreamError(f"The reply took longer than {limit:g} s.", code="upstream_timeout")
    if first_token_seen:
        limit = settings.CHAT_UPSTREAM_IDLE_TIMEOUT
        return UpstreamError(
            f"The model service went silent for {limit:g} s mid-reply.", code="upstream_timeout"
        )
    limit = settings.CHAT_UPSTREAM_FIRST_TOKEN_TIMEOUT
    return UpstreamError(
        f"The model service did not start replying within {limit:g} s.", code="upstream_timeout"
    )


def redact(text: str) -> str:
    """The text without the API key, should the upstream echo it back (some APIs quote the key sent)."""
    key = settings.DEDALUS_API_KEY
    if key and key in text:
        text = text.replace(key, "[redacted]")
    if len(key) > 8 and key[:8] in text:  # a quoted prefix, as in "Incorrect API key provided: dsk-abcd…"
        text = text.replace(key[:8], "[redacted]")
    return text


@contextmanager
def sdk_errors() -> Iterator[None]:
    """Run an SDK call: its failure comes out as UpstreamError, with the status the API answered (None
    when it did not answer) and the SDK's own error as its cause (`sdk_error_name`)."""
    try:
        yield
    except dedalus_labs.APIStatusError as exc:
        status = exc.status_code
        raise UpstreamError(
            f"The model service answered {status}.", retryable=status == 429 or status >= 500, status=status
        ) from exc
    except dedalus_labs.APITimeoutError as exc:
        raise UpstreamError("The model service was too slow.", code="upstream_timeout") from exc
    except dedalus_labs.APIConnectionError as exc:
        raise UpstreamError("Could not reach the model service.", retryable=True) from exc
    except dedalus_labs.APIError as exc:
        raise UpstreamError(f"The model service failed: {type(exc).__name__}.") from exc


def sdk_error_name(exc: UpstreamError) -> str:
    """The name of the SDK's error behind `exc` (what a log or an operator is told: never its text)."""
    return type(exc.__cause__).__name__


def catalog_unavailable(exc: UpstreamError) -> CatalogUnavailable:
    """Why the catalog could not be read, naming the setting to check."""
    if exc.status is not None:
        return CatalogUnavailable(f"The API answered {exc.status} (check DEDALUS_API_KEY).")
    return CatalogUnavailable(f"The API is unreachable (check DEDALUS_BASE_URL): {sdk_error_name(exc)}.")


def readiness_problem(exc: UpstreamError) -> str | None:
    """What a failed readiness call says is wrong. An answer with an error status still proves the
    service is reachable, except one refusing the key."""
    if exc.status in (401, 403):
        return "the API key was refused"
    if exc.status is not None:
        return f"answered {exc.status}" if exc.status >= 500 else None
    return f"unreachable: {sdk_error_name(exc)}"
