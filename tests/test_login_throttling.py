"""Sign-in is throttled: the CHAT_LOGIN_FAILURE_LIMIT-th bad password for one username from one address
locks that pair out (429, and then even the right password gets 429), on the chat's login page and the
admin's; other users and other addresses sign in as usual. CHAT_LOGIN_ADDRESS_FAILURE_LIMIT failures from
one address, across usernames, lock that address out.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-only"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_superuser("alice", "alice@example.com", PASSWORD)


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", PASSWORD)


def sign_in(path: str, username: str, password: str, address: str = "203.0.113.7") -> int:
    """POST the login form from `address` (Daphne's --proxy-headers put the client's there); the status."""
    browser = Client(REMOTE_ADDR=address)
    response = browser.post(path, {"username": username, "password": password})
    return response.status_code


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_after_the_failure_limit_even_the_right_password_is_refused(alice, path):
    for _ in range(settings.CHAT_LOGIN_FAILURE_LIMIT - 1):
        assert sign_in(path, "alice", "wrong") == 200  # the form again, with its error
    assert sign_in(path, "alice", "wrong") == 429  # the last failure allowed locks the pair out
    assert sign_in(path, "alice", PASSWORD) == 429


def test_a_locked_out_pair_does_not_lock_out_other_users_or_addresses(alice, bob):
    for _ in range(settings.CHAT_LOGIN_FAILURE_LIMIT):
        sign_in("/accounts/login/", "alice", "wrong")
    assert sign_in("/accounts/login/", "alice", PASSWORD) == 429
    assert sign_in("/accounts/login/", "bob", PASSWORD) == 302
    assert sign_in("/accounts/login/", "alice", PASSWORD, address="198.51.100.9") == 302


def test_a_success_before_the_limit_clears_the_failures(alice):
    for _ in range(settings.CHAT_LOGIN_FAILURE_LIMIT - 1):
        sign_in("/accounts/login/", "alice", "wrong")
    assert sign_in("/accounts/login/", "alice", PASSWORD) == 302
    for _ in range(settings.CHAT_LOGIN_FAILURE_LIMIT - 1):
        sign_in("/accounts/login/", "alice", "wrong")
    assert sign_in("/accounts/login/", "alice", PASSWORD) == 302


def test_guessing_across_many_usernames_from_one_address_locks_that_address_out(alice, bob):
    """Each username stays under its own limit; the address's failures together lock the address."""
    limit = settings.CHAT_LOGIN_ADDRESS_FAILURE_LIMIT
    guesses = settings.CHAT_LOGIN_FAILURE_LIMIT - 1
    tries = [f"user{n}" for n in range(30) for _ in range(guesses)][: limit + 2]
    statuses = [sign_in("/accounts/login/", username, "wrong") for username in tries]
    assert statuses[: limit - 1] == [200] * (limit - 1)
    assert statuses[limit - 1] == 429  # the failure that reaches the address's limit
    assert set(statuses[limit:]) == {429}
    # Now every sign-in from that address waits, even a right password; other addresses do not.
    assert sign_in("/accounts/login/", "bob", PASSWORD) == 429
    assert sign_in("/admin/login/", "alice", PASSWORD) == 429
    assert sign_in("/accounts/login/", "bob", PASSWORD, address="198.51.100.9") == 302


def test_a_success_does_not_clear_the_address_failures_of_other_usernames(alice, bob):
    limit = settings.CHAT_LOGIN_ADDRESS_FAILURE_LIMIT
    guesses = settings.CHAT_LOGIN_FAILURE_LIMIT - 1
    for n in range((limit - 1) // guesses):
        for _ in range(guesses):
            assert sign_in("/accounts/login/", f"user{n}", "wrong") == 200
    assert sign_in("/accounts/login/", "bob", PASSWORD) == 302  # the attacker's own account
    left = limit - ((limit - 1) // guesses) * guesses
    statuses = [sign_in("/accounts/login/", "someone", "wrong") for _ in range(left)]
    assert statuses[-1] == 429
