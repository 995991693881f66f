"""Sign-in throttling (django-axes): the client address that failed sign-ins are counted against."""

from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """Return the client's address: REMOTE_ADDR, which Daphne's --proxy-headers set from X-Forwarded-For.

    Named explicitly so that django-ipware, should it ever be installed, never makes axes read
    X-Forwarded-For itself (and trust whatever a client put there).
    """
    return request.META.get("REMOTE_ADDR")
