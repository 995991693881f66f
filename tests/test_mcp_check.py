"""GET /api/mcp-servers/check: a turn's MCP server checks, run as the user types, sending nothing."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import AsyncClient, Client

from conversations.models import Conversation, MCPServerPreset, Message

from .chat_sockets import BROWSER_SESSION_KEY, suite_browser_handshake_headers

CHECK_URL = "/api/mcp-servers/check"


@pytest.fixture
def browser(db) -> Client:
    """A browser with a session of its own, as the chat page gives it."""
    client = Client()
    assert client.get("/c/check-page/").status_code == 200
    assert settings.SESSION_COOKIE_NAME in client.cookies
    return client


def check(client: Client, servers: str) -> dict:
    response = client.get(CHECK_URL, {"servers": servers})
    assert response.status_code == 200
    return response.json()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "servers",
    ["acme/search", "acme/search@1.2.0", "https://mcp.example.com/sse", "acme/a,https://mcp.example.com", ""],
)
def test_slugs_and_public_https_urls_pass(browser, servers):
    assert check(browser, servers) == {"ok": True}
    assert Conversation.objects.count() == 0  # a check stores nothing


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("servers", "named"),
    [
        ("https://127.0.0.1/", "'https://127.0.0.1/': private, loopback and local hosts are not allowed."),
        (
            "acme/a,https://10.1.2.3/x",
            "'https://10.1.2.3/x': private, loopback and local hosts are not allowed.",
        ),
        (
            "https://localhost:8080",
            "'https://localhost:8080': private, loopback and local hosts are not allowed.",
        ),
        ("http://mcp.example.com", "'http://mcp.example.com': An MCP server must be a slug like org/name"),
        ("https://user:pw@mcp.example.com", "An MCP server URL must not carry credentials."),
        # One quoting for what was written, even when it holds a quote itself.
        (
            "https://10.1.2.3/it's",
            "'https://10.1.2.3/it's': private, loopback and local hosts are not allowed.",
        ),
        ("acme/it's", "'acme/it's': An MCP server must be a slug like org/name or an https:// URL."),
    ],
)
def test_a_bad_entry_is_named_with_the_turns_code(browser, servers, named):
    answer = check(browser, servers)
    assert answer["ok"] is False
    assert answer["code"] == "invalid_mcp_server"
    assert named in answer["message"]


@pytest.mark.django_db
def test_an_internal_host_an_administrator_offers_passes(browser):
    MCPServerPreset.objects.create(label="Intranet", target="https://10.0.0.5/mcp", enabled=True)
    assert check(browser, "https://10.0.0.5/mcp") == {"ok": True}
    assert check(browser, "https://10.0.0.6/mcp")["ok"] is False


@pytest.mark.django_db
def test_control_characters_are_refused(browser):
    answer = check(browser, "acme/se\x00arch")
    assert answer == {
        "ok": False,
        "code": "invalid_mcp_server",
        "message": "`mcp_servers` entries must not contain control characters.",
    }


@pytest.mark.django_db
def test_more_servers_than_a_message_may_name_are_refused(browser, settings):
    settings.CHAT_MAX_MCP_SERVERS = 2
    assert check(browser, "a/one,a/two")["ok"] is True
    answer = check(browser, "a/one,a/two,a/three")
    assert (answer["code"], answer["message"]) == ("invalid_mcp_server", "At most 2 MCP servers per message.")


@pytest.mark.django_db
def test_with_login_required_an_anonymous_check_is_401_and_a_signed_in_one_answers(settings):
    settings.CHAT_REQUIRE_LOGIN = True
    anonymous = Client()
    response = anonymous.get(CHECK_URL, {"servers": "acme/search"})
    assert response.status_code == 401
    assert response.json()["code"] == "login_required"
    user = get_user_model().objects.create_user("dana", password="pw-for-tests-only")
    signed_in = Client()
    signed_in.force_login(user)
    assert check(signed_in, "acme/search") == {"ok": True}


@pytest.mark.django_db
def test_a_cookie_less_client_is_refused_as_by_the_other_api_views():
    response = Client().get(CHECK_URL, {"servers": "acme/search"})
    assert response.status_code == 403
    assert response.json()["code"] == "session_required"


@pytest.mark.django_db
def test_only_get_is_allowed(browser):
    assert browser.post(CHECK_URL, {"servers": "acme/search"}).status_code == 405


@pytest.mark.django_db(transaction=True)
async def test_the_check_gives_the_very_message_a_turn_gives(standin, replies_settle):
    from .chat_sockets import socket_open

    bad = ["acme/search", "https://192.168.1.10/mcp"]
    socket = await socket_open("/ws/chat/check-same/", headers=await suite_browser_handshake_headers())
    await socket.send_json_to({"message": "hi", "mcp_servers": bad})
    refused = await socket.receive_json_from(timeout=5)
    await socket.disconnect()
    assert refused["type"] == "error"

    client = AsyncClient()
    client.cookies[settings.SESSION_COOKIE_NAME] = BROWSER_SESSION_KEY
    answer = (await client.get(CHECK_URL, {"servers": ",".join(bad)})).json()
    assert answer == {"ok": False, "code": refused["code"], "message": refused["message"]}
    assert await Message.objects.acount() == 0
