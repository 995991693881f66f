"""Sign-in throttling (django-axes): the client address failed sign-ins are counted against, and a
limit on one address's failures across usernames besides axes' own per username and address."""

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """Return the client's address: REMOTE_ADDR, which Daphne's --proxy-headers set from X-Forwarded-For.

    Named explicitly so that django-ipware, should it ever be installed, never makes axes read
    X-Forwarded-For itself (and trust whatever a client put there).
    """
    return request.META.get("REMOTE_ADDR")


class AddressThrottlingHandler(AxesDatabaseHandler):
    """Axes' database handler, that also locks out an address whose failures, all usernames together,
    reach CHAT_LOGIN_ADDRESS_FAILURE_LIMIT within the lockout time of each other.

    Axes compares one count with one limit, for each of its lockout parameters: so an address over its
    own limit is reported as having the pair's limit of failures, and axes locks it out (429) and lets
    it in again, exactly as it does a pair. A sign-in clears its own username's row only, so an
    attacker's own account does not wipe the address's count.
    """

    def get_failures(self, request, credentials: dict | None = None) -> int:
        failures = super().get_failures(request, credentials)
        limit = settings.CHAT_LOGIN_ADDRESS_FAILURE_LIMIT
        if limit <= 0 or not getattr(request, "axes_ip_address", None):
            return failures
        address_failures = (
            AccessAttempt.objects.filter(
                ip_address=request.axes_ip_address,
                attempt_time__gte=get_cool_off_threshold(request),
            ).aggregate(total=Sum("failures_since_start"))["total"]
            or 0
        )
        if address_failures >= limit:
            return max(failures, get_failure_limit(request, credentials))
        return failures
