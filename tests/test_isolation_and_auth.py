"""Accounts on the handshake and per-owner conversations: nobody sees or changes another's chat."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
import redis.asyncio
from asgiref.sync import sync_to_async
from channels.security.websocket import OriginValidator
from channels.testing import WebsocketCommunicator
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from chatproject.asgi import allowed_websocket_origins, application, websocket_app
from conversations.models import Conversation, DailyUsage, Feedback, Message
from conversations.owners import Owner

from .chat_sockets import ORIGIN, chunks_text, reply_collect

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie_for(client: Client) -> tuple[bytes, bytes]:
    """The Cookie header a browser with this client's session would send on the handshake."""
    return (
        b"cookie",
        f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode(),
    )


@sync_to_async
def browser_signed_in(username: str) -> Client:
    user = get_user_model().objects.create_user(username, password="pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return client


@sync_to_async
def browser_anonymous() -> Client:
    client = Client()
    client.get("/c/warmup/")  # the page gives the browser a session
    return client


async def socket_as(client: Client | None, path: str) -> WebsocketCommunicator:
    headers = [ORIGIN] if client is None else [ORIGIN, session_cookie_for(client)]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def chat_once(communicator: WebsocketCommunicator, text: str) -> list[dict]:
    history = await communicator.receive_json_from()
    assert history["type"] == "history"
    await communicator.send_json_to({"message": text})
    return await reply_collect(communicator)


@pytest.mark.parametrize("who", ["users", "anonymous browsers"])
async def test_another_owner_on_the_same_id_sees_nothing_and_changes_nothing(standin, replies_settle, who):
    if who == "users":
        alice, bob = await browser_signed_in("alice"), await browser_signed_in("bob")
    else:
        alice, bob = await browser_anonymous(), await browser_anonymous()
    a = await socket_as(alice, "/ws/chat/shared-id/")
    await chat_once(a, "alice's secret")

    b = await socket_as(bob, "/ws/chat/shared-id/")
    history = await b.receive_json_from()
    assert history["messages"] == []
    assert "alice" not in str(history)
    await b.send_json_to({"message": "bob was here"})
    frames = await reply_collect(b)
    assert "alice" not in chunks_text(frames)  # the upstream never saw alice's turns either
    assert standin.requests()[-1]["body"]["messages"] == [{"role": "user", "content": "bob was here"}]

    conversations = [c async for c in Conversation.objects.filter(session_id="shared-id").order_by("pk")]
    assert len(conversations) == 2
    alices = [m.content async for m in Message.objects.filter(conversation=conversations[0], role="user")]
    assert alices == ["alice's secret"]
    # Alice's open tab heard nothing of bob's turn.
    assert await a.receive_nothing(timeout=0.3)
    await a.disconnect()
    await b.disconnect()


async def test_the_page_of_another_owners_id_shows_nothing_of_theirs(standin, replies_settle):
    alice, bob = await browser_signed_in("alice"), await browser_signed_in("bob")
    a = await socket_as(alice, "/ws/chat/page-id/")
    await chat_once(a, "a title only alice knows")
    await a.disconnect()
    page = await sync_to_async(bob.get)("/c/page-id/")
    assert page.status_code == 200
    assert b"a title only alice knows" not in page.content


async def test_logging_in_hands_the_browsers_anonymous_chats_to_the_user(standin, replies_settle):
    browser = await browser_anonymous()
    anonymous = await socket_as(browser, "/ws/chat/before-login/")
    await chat_once(anonymous, "asked before logging in")
    await anonymous.disconnect()

    await sync_to_async(get_user_model().objects.create_user)("carol", password="pw-for-tests-only")
    response = await sync_to_async(browser.post)(
        "/accounts/login/", {"username": "carol", "password": "pw-for-tests-only"}
    )
    assert response.status_code == 302
    signed_in = await socket_as(browser, "/ws/chat/before-login/")
    history = await signed_in.receive_json_from()
    assert [m["content"] for m in history["messages"] if m["role"] == "user"] == ["asked before logging in"]
    conversation = await Conversation.objects.select_related("user").aget(session_id="before-login")
    assert conversation.user.username == "carol"
    await signed_in.disconnect()


async def test_with_login_required_an_anonymous_handshake_is_closed_4401_without_data(settings):
    settings.CHAT_REQUIRE_LOGIN = True
    communicator = WebsocketCommunicator(application, "/ws/chat/t1/", headers=[ORIGIN])
    connected, _ = await communicator.connect()
    assert connected
    closing = await communicator.receive_output()
    assert closing == {"type": "websocket.close", "code": 4401}


async def test_with_login_required_a_signed_in_user_chats(settings, standin, replies_settle):
    settings.CHAT_REQUIRE_LOGIN = True
    user_browser = await browser_signed_in("dave")
    communicator = await socket_as(user_browser, "/ws/chat/t1/")
    frames = await chat_once(communicator, "hello")
    assert frames[-1]["type"] == "done"
    await communicator.disconnect()


def test_with_login_required_the_page_redirects_to_login(settings, client):
    settings.CHAT_REQUIRE_LOGIN = True
    response = client.get("/c/abc/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/c/abc/")
    assert client.get("/accounts/login/").status_code == 200


def test_a_superuser_can_chat_and_reach_the_admin(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    client.force_login(admin)
    page = client.get("/c/admin-chat/")
    assert page.status_code == 200
    assert b'href="/admin/"' in page.content
    assert client.get("/admin/").status_code == 200


def test_forms_need_a_csrf_token():
    get_user_model().objects.create_user("erin", password="pw-for-tests-only")
    browser = Client(enforce_csrf_checks=True)
    assert (
        browser.post("/accounts/login/", {"username": "erin", "password": "pw-for-tests-only"}).status_code
        == 403
    )
    page = browser.get("/accounts/login/")
    token = page.cookies["csrftoken"].value
    response = browser.post(
        "/accounts/login/",
        {"username": "erin", "password": "pw-for-tests-only", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert browser.post("/accounts/logout/").status_code == 403


async def test_handshakes_from_allowed_hosts_and_csrf_trusted_origins_pass_and_others_do_not(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.org", "https://*.example.net"]
    app = OriginValidator(websocket_app, allowed_websocket_origins())

    async def handshake(origin: bytes | None) -> bool:
        headers = [(b"origin", origin)] if origin is not None else []
        communicator = WebsocketCommunicator(app, "/ws/chat/bad$id/", headers=headers)
        connected, _ = await communicator.connect()
        if connected:
            await communicator.disconnect()
        return connected

    assert await handshake(b"http://localhost:8000")  # an ALLOWED_HOSTS name, any port
    assert await handshake(b"https://chat.example.org")
    assert await handshake(b"https://eu.example.net")
    assert not await handshake(b"https://evil.example")
    assert not await handshake(b"https://chat.example.org.evil.example")
    assert not await handshake(None)


async def expect_session_expired(communicator: WebsocketCommunicator) -> None:
    frame = await communicator.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "session_expired")
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4401}


@pytest.mark.parametrize("turn", ["message", "regenerate", "edit"])
async def test_after_logout_an_open_socket_starts_no_turn_and_is_closed_4401(standin, replies_settle, turn):
    browser = await browser_signed_in("gina")
    tab = await socket_as(browser, "/ws/chat/after-logout/")
    frames = await chat_once(tab, "before logout")
    start = frames[0]
    await sync_to_async(browser.post)("/accounts/logout/")

    frame = {
        "message": {"message": "after logout"},
        "regenerate": {"type": "regenerate", "message_id": start["message_id"]},
        "edit": {"type": "edit", "message_id": start["user_message"]["id"], "message": "after logout"},
    }[turn]
    await tab.send_json_to(frame)
    await expect_session_expired(tab)
    assert await Message.objects.acount() == 2  # nothing stored under the signed-out user
    assert len(standin.requests()) == 1


async def test_an_anonymous_socket_whose_session_ended_starts_no_turn(standin, replies_settle):
    browser = await browser_anonymous()
    tab = await socket_as(browser, "/ws/chat/expired/")
    await chat_once(tab, "while the session lasts")
    await Session.objects.all().adelete()  # expired and cleared, or flushed elsewhere

    await tab.send_json_to({"message": "after it ended"})
    await expect_session_expired(tab)
    assert not await Message.objects.filter(content="after it ended").aexists()


@pytest.mark.parametrize("kind", ["history", "history page", "feedback", "switch", "stop", "resync"])
@pytest.mark.parametrize("who", ["user", "anonymous"])
async def test_after_the_session_ended_no_frame_reads_or_writes_and_the_socket_closes_4401(
    standin, replies_settle, kind, who
):
    browser = await (browser_signed_in(f"ivy-{kind}") if who == "user" else browser_anonymous())
    tab = await socket_as(browser, "/ws/chat/ended/")
    start = (await chat_once(tab, "before it ended"))[0]
    reply_id, question_id = start["message_id"], start["user_message"]["id"]
    await Session.objects.all().adelete()  # expired and cleared, or flushed by a logout elsewhere

    await tab.send_json_to(
        {
            "history": {"type": "history"},
            "history page": {"type": "history", "before": reply_id},
            "feedback": {"type": "feedback", "message_id": reply_id, "value": 1, "comment": "after"},
            "switch": {"type": "switch", "message_id": question_id},
            "stop": {"type": "stop"},
            "resync": {"type": "resync", "message_id": reply_id, "offset": 0},
        }[kind]
    )
    await expect_session_expired(tab)
    assert not await Feedback.objects.aexists()
    conversation = await Conversation.objects.aget(session_id="ended")
    assert conversation.current_message_id in (None, reply_id)


@pytest.mark.parametrize("change", ["password changed", "deactivated", "deleted"])
async def test_a_socket_of_a_user_whose_sign_in_no_longer_holds_neither_reads_nor_writes(
    standin, replies_settle, change
):
    """As Django's own sessions do over HTTP: a password change elsewhere ends the other sessions."""
    browser = await browser_signed_in(f"lou-{change[:4]}")
    other = await browser_signed_in(f"max-{change[:4]}")
    tab, elsewhere = await socket_as(browser, "/ws/chat/held/"), await socket_as(other, "/ws/chat/held/")
    await chat_once(tab, "while signed in")
    user = await get_user_model().objects.aget(username=f"lou-{change[:4]}")
    if change == "password changed":
        user.set_password("a-new-password-elsewhere")
        await user.asave()
    elif change == "deactivated":
        user.is_active = False
        await user.asave()
    else:
        await user.adelete()

    await tab.send_json_to({"type": "history"})
    await expect_session_expired(tab)
    assert (await elsewhere.receive_json_from())["type"] == "history"
    await elsewhere.send_json_to({"type": "history"})
    assert (await elsewhere.receive_json_from())["type"] == "history"  # another user's session stands
    await elsewhere.disconnect()


@pytest.mark.parametrize("cookie", ["made up", "expired"])
async def test_a_handshake_with_a_session_cookie_that_does_not_stand_is_closed_4401(cookie):
    browser = await browser_anonymous()
    if cookie == "made up":
        browser.cookies[settings.SESSION_COOKIE_NAME] = "madeupsessionkeythatwasneverissued1"
    else:
        await Session.objects.aupdate(expire_date=timezone.now() - timedelta(seconds=1))
    communicator = WebsocketCommunicator(
        application, "/ws/chat/t1/", headers=[ORIGIN, session_cookie_for(browser)]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4401}


@pytest.mark.parametrize("bus", ["redis", "in process"])
async def test_a_logout_closes_the_sessions_open_sockets_at_once_and_no_others(
    settings, standin, replies_settle, bus
):
    if bus == "in process":
        settings.REDIS_URL = ""  # one process: its instance hears the logout without Redis
    browser, other = await browser_signed_in("jon"), await browser_signed_in("kim")
    tabs = [await socket_as(browser, f"/ws/chat/tab-{n}/") for n in range(2)]
    elsewhere = await socket_as(other, "/ws/chat/tab-0/")
    for tab in [*tabs, elsewhere]:
        assert (await tab.receive_json_from())["type"] == "history"
    await sync_to_async(browser.post)("/accounts/logout/")

    for tab in tabs:  # nothing sent: the logout itself closed them
        await expect_session_expired(tab)
    assert await elsewhere.receive_nothing(timeout=0.3)  # another user's session goes on
    await elsewhere.send_json_to({"message": "still here"})
    assert (await reply_collect(elsewhere))[-1]["type"] == "done"
    await elsewhere.disconnect()


async def test_a_socket_whose_session_expired_is_closed_at_the_sweep(settings, standin, replies_settle):
    settings.CHAT_REPLY_LEASE_SECONDS = 0.6  # a heartbeat every 0.2 s
    settings.CHAT_SOCKET_SESSION_CHECK_SECONDS = 0.2
    browser = await browser_anonymous()
    tab = await socket_as(browser, "/ws/chat/expiring/")
    assert (await tab.receive_json_from())["type"] == "history"
    assert await tab.receive_nothing(timeout=0.5)  # a standing session is left alone
    await Session.objects.aupdate(expire_date=timezone.now() - timedelta(seconds=1))

    frame = await tab.receive_json_from(timeout=3)
    assert (frame["type"], frame["code"]) == ("error", "session_expired")
    assert await tab.receive_output(timeout=1) == {"type": "websocket.close", "code": 4401}


async def test_a_signed_in_socket_keeps_chatting_while_its_session_stands(standin, replies_settle):
    browser = await browser_signed_in("hank")
    tab = await socket_as(browser, "/ws/chat/still-in/")
    await chat_once(tab, "first")
    await tab.send_json_to({"message": "second"})
    assert (await reply_collect(tab))[-1]["type"] == "done"
    await tab.disconnect()


async def test_an_anonymous_session_key_is_stored_nowhere_in_clear(
    standin, replies_settle, staff_client, settings
):
    settings.CHAT_RATE_LIMIT, settings.CHAT_MAX_SOCKETS_PER_OWNER = "100/minute", 5  # both keep Redis keys
    browser = await browser_anonymous()
    raw_key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    tab = await socket_as(browser, "/ws/chat/no-clear-key/")  # stays open: its socket entry is in Redis
    await chat_once(tab, "hello")

    conversation = await Conversation.objects.aget(session_id="no-clear-key")
    assert conversation.owner_key == Owner(session_key=raw_key).key
    assert raw_key not in str(await sync_to_async(lambda: list(Conversation.objects.values()))())
    assert raw_key not in str(await sync_to_async(lambda: list(DailyUsage.objects.values()))())
    if settings.REDIS_URL:
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        keys = [key.decode() async for key in client.scan_iter(f"{settings.CHAT_REDIS_PREFIX}*")]
        await client.aclose()
        assert any(conversation.owner_key in key for key in keys)  # the owner's keys, under its digest
        assert not [key for key in keys if raw_key in key]
    for page in (
        "/admin/conversations/dailyusage/",
        "/admin/conversations/dailyusage/export.csv",
        "/admin/conversations/conversation/",
        f"/admin/conversations/conversation/{conversation.pk}/change/",
    ):
        response = await sync_to_async(staff_client.get)(page)
        assert response.status_code == 200
        assert raw_key.encode() not in response.content
    await tab.disconnect()


def test_the_migration_replaces_stored_session_keys_by_their_digest():
    migration = importlib.import_module("conversations.migrations.0008_anonymous_session_keys_hashed")
    user = get_user_model().objects.create_user("ivy", password="pw-for-tests-only")
    raw = "k" * 32
    Conversation.objects.create(session_id="anon", owner_key=f"s:{raw}", owner_session_key=raw)
    Conversation.objects.create(session_id="mine", owner_key=f"u:{user.pk}", user=user)
    Conversation.objects.create(session_id="api", owner_key="public")

    migration.session_keys_hash(django_apps, None)

    rows = dict(Conversation.objects.values_list("session_id", "owner_key"))
    assert rows == {"anon": Owner(session_key=raw).key, "mine": f"u:{user.pk}", "api": "public"}
    assert Conversation.objects.get(session_id="anon").owner_session_key == Owner(session_key=raw).key[2:]
    assert raw not in str(list(Conversation.objects.values()))


@pytest.mark.django_db
def test_signing_in_at_the_admin_hands_the_browsers_conversations_to_the_user():
    from django.core.files.uploadedfile import SimpleUploadedFile

    from conversations.models import Attachment

    browser = Client()
    browser.get("/c/mine1/")  # the page gives the browser its session
    owner_key = Owner(session_key=browser.cookies[settings.SESSION_COOKIE_NAME].value).key
    Conversation.objects.create(owner_key=owner_key, session_id="mine1", title="Before signing in")
    assert browser.post("/api/attachments/", {"file": SimpleUploadedFile("a.txt", b"hi")}).status_code == 201
    admin = get_user_model().objects.create_superuser("root", password="pw-for-tests-only")

    response = browser.post(
        "/admin/login/?next=/admin/", {"username": "root", "password": "pw-for-tests-only", "next": "/admin/"}
    )
    assert response.status_code == 302
    conversation = Conversation.objects.get(session_id="mine1")
    assert (conversation.owner_key, conversation.user_id) == (f"u:{admin.pk}", admin.pk)
    assert Attachment.objects.get().owner_key == f"u:{admin.pk}"
    listed = browser.get("/api/conversations/").json()
    assert [item["session_id"] for item in listed["conversations"]] == ["mine1"]
