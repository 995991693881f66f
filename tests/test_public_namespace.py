"""Clients without an account or a browser session: what they may reach, and where their sockets go."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.test import Client

from chatproject.asgi import application
from conversations.models import Conversation, Message
from conversations.owners import PUBLIC_OWNER_KEY, Owner

from .chat_sockets import ORIGIN, socket_open
from .test_isolation_and_auth import browser_anonymous, browser_signed_in, session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def public_conversation() -> Conversation:
    """A conversation of the public namespace, as a cookie-less client of `/ws/<id>` leaves one."""
    conversation = Conversation.objects.create(
        owner_key=PUBLIC_OWNER_KEY, session_id="pub-1", title="Payroll"
    )
    Message.objects.create(conversation=conversation, role="user", content="salaries of the board")
    return conversation


def cookie_less_with_csrf() -> Client:
    """A client with no session, holding a CSRF cookie and header it chose itself."""
    client = Client(HTTP_X_CSRFTOKEN="a" * 32)
    client.cookies["csrftoken"] = "a" * 32
    return client


def test_a_cookie_less_client_cannot_list_or_search_the_public_conversations(public_conversation):
    stranger = Client()
    for query in ({}, {"q": "salaries"}):
        response = stranger.get("/api/conversations/", query)
        assert response.status_code == 403
        assert response.json()["code"] == "session_required"
        assert b"pub-1" not in response.content
        assert b"Payroll" not in response.content


def test_a_cookie_less_client_gets_404_for_export_rename_and_delete_as_if_nothing_were_there(
    public_conversation,
):
    stranger = cookie_less_with_csrf()
    missing = stranger.get("/c/no-such-id/export.json")
    for path in ("/c/pub-1/export.json", "/c/pub-1/export.md"):
        response = stranger.get(path)
        assert (response.status_code, response.content) == (404, missing.content)
    assert stranger.post("/c/pub-1/rename", {"title": "hijacked"}).status_code == 404
    assert stranger.post("/c/pub-1/delete").status_code == 404
    assert stranger.post("/c/pub-1/delete").json() == stranger.post("/c/no-such-id/delete").json()
    assert Conversation.objects.get(session_id="pub-1").title == "Payroll"


def test_with_login_required_an_anonymous_browser_reaches_no_conversation_over_http(settings):
    browser = Client()
    browser.get("/c/warmup/")  # a session, before login became required
    mine = Session.objects.get().session_key
    Conversation.objects.create(owner_key=Owner(session_key=mine).key, session_id="anon-1", title="mine")
    settings.CHAT_REQUIRE_LOGIN = True
    assert browser.get("/api/conversations/").status_code == 401
    assert browser.get("/c/anon-1/export.json").status_code == 404
    assert browser.get("/c/anon-1/export.md").status_code == 404
    assert browser.post("/c/anon-1/rename", {"title": "x"}).status_code == 404
    assert browser.post("/c/anon-1/delete").status_code == 404


async def handshake_close_code(path: str, headers: list[tuple[bytes, bytes]]) -> int | None:
    """Connect; return the close code sent before any data frame, or None when a `history` came."""
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_output(timeout=5)
    if first["type"] == "websocket.close":
        return first["code"]
    assert '"history"' in first["text"]
    await communicator.disconnect()
    return None


async def test_a_cookie_less_socket_on_the_page_path_is_closed_4401_without_data():
    assert await handshake_close_code("/ws/chat/pub-1/", [ORIGIN]) == 4401


async def test_a_tab_whose_session_is_gone_is_closed_4401_instead_of_joining_public(replies_settle):
    browser = await browser_anonymous()
    cookie = session_cookie_for(browser)
    assert await handshake_close_code("/ws/chat/tab/", [ORIGIN, cookie]) is None
    await Session.objects.all().adelete()  # logged out elsewhere, or expired
    assert await handshake_close_code("/ws/chat/tab/", [ORIGIN, cookie]) == 4401


async def test_a_cookie_less_socket_on_the_original_api_path_chats_while_public_sockets_are_allowed(
    settings, replies_settle
):
    communicator = await socket_open("/ws/pub-api", headers=[ORIGIN])
    assert communicator.history["messages"] == []
    await communicator.disconnect()
    settings.CHAT_PUBLIC_SOCKETS = False
    assert await handshake_close_code("/ws/pub-api", [ORIGIN]) == 4401


async def test_signed_in_and_anonymous_browsers_keep_both_paths(settings, replies_settle):
    settings.CHAT_PUBLIC_SOCKETS = False
    for browser in (await browser_signed_in("frank"), await browser_anonymous()):
        headers = [ORIGIN, session_cookie_for(browser)]
        assert await handshake_close_code("/ws/chat/mine/", headers) is None
        assert await handshake_close_code("/ws/mine", headers) is None
