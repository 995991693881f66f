"""Sessions mean what they say. A socket's session check reads the session store on a worker thread of its
own: a thousand tabs sending at once are not queued one by one behind a single thread (every frame of a
signed-in or anonymous browser makes this check). Over HTTP the owner is the session as loaded: a cookie
never issued, or whose session expired or was purged, reaches nothing."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from conversations import owners
from conversations.models import Attachment, Conversation, Message
from conversations.owners import Owner
from conversations.relay.instance import instance_get
from conversations.relay.session_ends import session_ended_publish


async def test_session_checks_run_side_by_side(monkeypatch):
    both_inside = threading.Barrier(2, timeout=5)

    def session_holds(owner: Owner) -> bool:
        both_inside.wait()  # breaks (and raises) if the second check cannot start while the first runs
        return True

    monkeypatch.setattr(owners, "_session_holds", session_holds)
    browsers = [Owner(session_key="first-browser"), Owner(session_key="second-browser")]
    assert await asyncio.gather(*(owners.owner_still_valid(owner) for owner in browsers)) == [True, True]


@pytest.mark.django_db(transaction=True)
async def test_a_session_that_is_gone_fails_the_check():
    assert not await owners.owner_still_valid(Owner(session_key="never-stored"))


# Over HTTP, the owner is the session as loaded: a cookie whose session was never issued, has expired or
# was purged is a cookie-less client's, and reaches nothing.


@pytest.fixture
def anonymous_browser_with_a_chat(db):
    """A browser with an issued anonymous session, a conversation and an uploaded file under it."""
    browser = Client()
    browser.get("/c/warmup/")
    key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    conversation = Conversation.objects.create(session_id="mine", owner_key=Owner(session_key=key).key)
    Message.objects.create(conversation=conversation, role="user", content="my secret question")
    upload = browser.post("/api/attachments/", {"file": SimpleUploadedFile("notes.txt", b"my notes")})
    assert upload.status_code == 201, upload.content
    return browser, key, upload.json()["url"]


def browser_with_cookie(key: str) -> Client:
    browser = Client()
    browser.cookies[settings.SESSION_COOKIE_NAME] = key
    return browser


def assert_reaches_nothing(browser: Client, download_url: str) -> None:
    listing = browser.get("/api/conversations/")
    assert (listing.status_code, listing.json()["code"]) == (403, "session_required")
    assert browser.get("/c/mine/export.md").status_code == 404
    assert browser.get("/c/mine/export.json").status_code == 404
    assert browser.get(download_url).status_code == 404
    refused = browser.post("/api/attachments/", {"file": SimpleUploadedFile("a.txt", b"hi")})
    assert (refused.status_code, refused.json()["code"]) == (403, "session_required")


def test_the_issued_session_reaches_its_own_chat_and_files(anonymous_browser_with_a_chat):
    browser, _key, url = anonymous_browser_with_a_chat
    assert [c["session_id"] for c in browser.get("/api/conversations/").json()["conversations"]] == ["mine"]
    assert b"my secret question" in browser.get("/c/mine/export.md").content
    assert browser.get(url).status_code == 200


def test_a_made_up_session_cookie_is_a_cookie_less_client(anonymous_browser_with_a_chat):
    _browser, _key, url = anonymous_browser_with_a_chat
    made_up = browser_with_cookie("madeupsessionkeythatwasneverissued1")
    assert_reaches_nothing(made_up, url)
    assert Attachment.objects.count() == 1  # the refused upload stored nothing


@pytest.mark.parametrize("ended", ["expired", "purged"])
def test_the_cookie_of_a_session_that_ended_reaches_nothing(anonymous_browser_with_a_chat, ended):
    _browser, key, url = anonymous_browser_with_a_chat
    if ended == "expired":
        Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    else:
        Session.objects.filter(session_key=key).delete()
    assert_reaches_nothing(browser_with_cookie(key), url)


def test_a_browser_whose_session_ended_gets_a_new_one_from_the_page(anonymous_browser_with_a_chat):
    _browser, key, _url = anonymous_browser_with_a_chat
    Session.objects.filter(session_key=key).delete()
    returning = browser_with_cookie(key)
    assert returning.get("/c/fresh/").status_code == 200
    fresh = returning.cookies[settings.SESSION_COOKIE_NAME].value
    assert fresh != key
    assert Session.objects.filter(session_key=fresh).exists()
    assert returning.get("/api/conversations/").json()["conversations"] == []  # not the ended one's


def test_the_sweep_finds_in_one_pass_exactly_the_sessions_that_ended(django_user_model):
    def signed_in(name: str) -> Owner:
        user = django_user_model.objects.create_user(name, password="pw-for-tests-only")
        browser = Client()
        browser.force_login(user)
        return Owner(user_id=user.pk, session_key=browser.cookies[settings.SESSION_COOKIE_NAME].value)

    def anonymous() -> Owner:
        browser = Client()
        browser.get("/c/warmup/")
        return Owner(session_key=browser.cookies[settings.SESSION_COOKIE_NAME].value)

    standing_user, changed_password, standing_browser, expired = (
        signed_in("nia"),
        signed_in("oto"),
        anonymous(),
        anonymous(),
    )
    user = django_user_model.objects.get(pk=changed_password.user_id)
    user.set_password("changed-elsewhere")
    user.save()
    Session.objects.filter(session_key=expired.session_key).update(expire_date=timezone.now())
    made_up = Owner(session_key="madeupsessionkeythatwasneverissued1")
    # An anonymous owner on a user's session (or the reverse) is not the session's owner either.
    wrong_owner = Owner(session_key=standing_user.session_key)

    owners_list = [standing_user, changed_password, standing_browser, expired, made_up, wrong_owner]
    ended = owners.owners_whose_session_ended(owners=owners_list)
    assert set(ended) == {changed_password, expired, made_up, wrong_owner}


def test_a_signed_in_owners_check_is_one_query_and_ends_with_its_sign_in(
    django_user_model, django_assert_num_queries
):
    user = django_user_model.objects.create_user("pia", password="pw-for-tests-only")
    browser = Client()
    browser.force_login(user)
    owner = Owner(user_id=user.pk, session_key=browser.cookies[settings.SESSION_COOKIE_NAME].value)
    with django_assert_num_queries(1):  # the session and the user together
        assert owners._session_holds(owner)
    assert not owners._session_holds(Owner(user_id=user.pk + 1, session_key=owner.session_key))
    user.is_active = False
    user.save()
    assert not owners._session_holds(owner)
    user.is_active = True
    user.save()
    assert owners._session_holds(owner)
    Session.objects.filter(session_key=owner.session_key).update(expire_date=timezone.now())
    with django_assert_num_queries(1):
        assert not owners._session_holds(owner)


@pytest.mark.django_db(transaction=True)
def test_a_logout_after_an_instances_event_loop_closed_still_answers(settings):
    """One process, no Redis: a logout tells every started instance on its own loop. An instance whose
    loop closed (a finished test's, a stopped server's) serves no socket: it is passed over, not an error
    that fails the logout."""
    settings.REDIS_URL = ""
    loop = asyncio.new_event_loop()
    instance = loop.run_until_complete(instance_get())
    assert instance.heartbeat is not None
    instance.heartbeat.cancel()  # nothing left pending on the loop when it closes
    loop.run_until_complete(asyncio.gather(instance.heartbeat, return_exceptions=True))
    loop.close()  # closed with its instance still registered
    session_ended_publish("a-session-key")  # raised "Event loop is closed", failing the logout's request
