"""MCP credentials end to end: sealed in the database, given to the server they belong to, encrypted to
the authorisation server's cached key (opened again by the stand-in, which the tests compare), and never
in a frame, a page, an export or a log line."""

from __future__ import annotations

import json
import logging

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from conversations.mcp import sealing
from conversations.mcp.credentials import preset_credentials_set, user_credentials_save
from conversations.models import MCPCredential, MCPServerPreset

from .chat_sockets import reply_collect, socket_open
from .test_isolation_and_auth import session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)

SHARED_SECRET = "sk-shared-7f3a9c1e5b"
OWN_SECRET = "ghp-own-4d2b8e6a0c"
ORIGIN = (b"origin", b"http://127.0.0.1")


def raw_column(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 (fixed names)
        return cursor.fetchone()[0]


@pytest.fixture
def search_preset() -> MCPServerPreset:
    preset = MCPServerPreset(label="Search", target="acme/search@1.2.0")
    preset_credentials_set(preset, {"api_key": SHARED_SECRET})
    preset.save()
    return preset


@pytest.fixture
def github_preset() -> MCPServerPreset:
    return MCPServerPreset.objects.create(
        label="GitHub", target="acme/github", user_credentials=True, credential_names=["token"]
    )


@sync_to_async
def browser_of(username: str) -> tuple[Client, int]:
    user = get_user_model().objects.create_user(username, password="pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return client, user.pk


def test_credentials_are_sealed_in_the_database_and_open_with_the_key(search_preset):
    stored = raw_column("conversations_mcpserverpreset", "credentials_sealed", search_preset.pk)
    assert SHARED_SECRET not in stored
    assert "api_key" not in stored
    assert sealing.unseal(stored) == {"api_key": SHARED_SECRET}


def test_a_new_key_put_first_still_opens_old_credentials_and_reseal_moves_them_to_it(settings, search_preset):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    old = Fernet.generate_key().decode()
    settings.CHAT_CREDENTIALS_KEYS = [old]
    preset_credentials_set(search_preset, {"api_key": SHARED_SECRET})
    search_preset.save()
    settings.CHAT_CREDENTIALS_KEYS = [Fernet.generate_key().decode(), old]
    search_preset.refresh_from_db()
    assert sealing.unseal(search_preset.credentials_sealed) == {"api_key": SHARED_SECRET}

    call_command("credentials_reseal")
    settings.CHAT_CREDENTIALS_KEYS = settings.CHAT_CREDENTIALS_KEYS[:1]  # the old key dropped
    search_preset.refresh_from_db()
    assert sealing.unseal(search_preset.credentials_sealed) == {"api_key": SHARED_SECRET}


async def test_a_presets_shared_credentials_reach_its_server_encrypted_and_open_at_the_standin(
    chat_socket, standin, search_preset, caplog
):
    caplog.set_level(logging.DEBUG)
    await chat_socket.send_json_to({"message": "find it", "mcp_servers": ["acme/search@1.2.0"]})
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done", frames[-1]

    (request,) = standin.requests()
    (spec,) = request["body"]["mcp_servers"]
    assert (spec["slug"], spec["version"], spec["name"]) == ("acme/search", "1.2.0", "acme/search")
    assert SHARED_SECRET not in json.dumps(request["body"])  # on the wire, only the envelope
    assert request["mcp_credentials"] == {"acme/search": {"acme-search": {"api_key": SHARED_SECRET}}}
    assert SHARED_SECRET not in json.dumps(frames)
    assert SHARED_SECRET not in caplog.text


async def test_a_users_own_credentials_go_to_their_server_and_nobody_elses(standin, github_preset):
    alice, alice_id = await browser_of("alice")
    bob, _ = await browser_of("bob")
    await sync_to_async(user_credentials_save)(
        user_id=alice_id, preset=github_preset, values={"token": OWN_SECRET}
    )
    raw = await sync_to_async(raw_column)(
        "conversations_mcpcredential", "sealed", (await MCPCredential.objects.aget()).pk
    )
    assert OWN_SECRET not in raw

    socket = await socket_open("/ws/chat/own/", headers=[ORIGIN, session_cookie_for(alice)])
    await socket.send_json_to({"message": "my repos", "mcp_servers": ["acme/github"]})
    assert (await reply_collect(socket))[-1]["type"] == "done"
    await socket.disconnect()
    (request,) = standin.requests()
    assert request["mcp_credentials"] == {"acme/github": {"acme-github": {"token": OWN_SECRET}}}

    # Bob has none of his own: refused before anything goes upstream, with a clear code.
    socket = await socket_open("/ws/chat/bobs/", headers=[ORIGIN, session_cookie_for(bob)])
    await socket.send_json_to({"message": "my repos", "mcp_servers": ["acme/github"]})
    (error,) = await reply_collect(socket)
    assert (error["type"], error["code"]) == ("error", "mcp_credentials_required")
    assert "GitHub" in error["message"]
    # ... and the socket stays usable.
    await socket.send_json_to({"message": "plain question"})
    assert (await reply_collect(socket))[-1]["type"] == "done"
    await socket.disconnect()
    assert len(standin.requests()) == 2


async def test_the_key_is_fetched_once_and_again_when_the_server_rotated_it(
    chat_socket, standin, search_preset
):
    before = standin.http.get("/_standin/jwks").json()["fetches"]
    for text in ("one", "two"):
        await chat_socket.send_json_to({"message": text, "mcp_servers": ["acme/search@1.2.0"]})
        assert (await reply_collect(chat_socket))[-1]["type"] == "done"
    assert standin.http.get("/_standin/jwks").json()["fetches"] - before <= 1  # cached, not per request

    standin.http.post("/_standin/jwks/rotate").raise_for_status()
    await chat_socket.send_json_to({"message": "three", "mcp_servers": ["acme/search@1.2.0"]})
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done", frames[-1]  # refused once with the old key, resent with the new
    *_, refused, resent = standin.requests()
    assert refused["outcome"] == "error_status"
    assert resent["mcp_credentials"] == {"acme/search": {"acme-search": {"api_key": SHARED_SECRET}}}


def test_the_credentials_api_saves_lists_names_only_and_removes(client, django_user_model, github_preset):
    user = django_user_model.objects.create_user("carol", password="pw-for-tests-only")
    url = f"/api/mcp-credentials/{github_preset.pk}/"
    body = json.dumps({"values": {"token": OWN_SECRET}})
    assert client.put(url, body, content_type="application/json").status_code == 401  # signed in only

    client.force_login(user)
    saved = client.put(url, body, content_type="application/json")
    assert saved.status_code == 200
    assert saved.json()["saved"] is True
    bad = client.put(url, json.dumps({"values": {"password": "x"}}), content_type="application/json")
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_credentials")

    listed = client.get("/api/mcp-credentials/")
    assert OWN_SECRET not in listed.content.decode()
    (entry,) = listed.json()["presets"]
    assert (entry["label"], entry["names"], entry["saved"]) == ("GitHub", ["token"], True)

    page = client.get("/c/some-chat/")
    assert OWN_SECRET not in page.content.decode()
    assert client.delete(url).json() == {"saved": False}
    assert not MCPCredential.objects.exists()


def test_the_credentials_api_keeps_csrf(django_user_model, github_preset):
    user = django_user_model.objects.create_user("dave", password="pw-for-tests-only")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.put(
        f"/api/mcp-credentials/{github_preset.pk}/",
        json.dumps({"values": {"token": OWN_SECRET}}),
        content_type="application/json",
    )
    assert response.status_code == 403
    assert not MCPCredential.objects.exists()


def test_the_admin_writes_shared_credentials_but_never_shows_them(staff_client, search_preset):
    url = f"/admin/conversations/mcpserverpreset/{search_preset.pk}/change/"
    page = staff_client.get(url).content.decode()
    assert SHARED_SECRET not in page
    assert "api_key (values hidden)" in page

    form = {
        "label": "Search",
        "target": "acme/search@1.2.0",
        "description": "",
        "enabled": "on",
        "position": "0",
        "credential_names": "[]",
        "shared_credentials": "api_key=sk-new-value-123\ntoken=tok-456",
    }
    assert staff_client.post(url, form).status_code == 302
    search_preset.refresh_from_db()
    assert sealing.unseal(search_preset.credentials_sealed) == {
        "api_key": "sk-new-value-123",
        "token": "tok-456",
    }

    # A form shown again after an error never echoes what was typed either.
    again = staff_client.post(
        url, {**form, "target": "not a target", "shared_credentials": "api_key=sk-typed-789"}
    )
    assert again.status_code == 200
    assert "sk-typed-789" not in again.content.decode()

    kept = {**form, "shared_credentials": ""}
    staff_client.post(url, kept)
    search_preset.refresh_from_db()
    assert sealing.unseal(search_preset.credentials_sealed)["token"] == "tok-456"  # empty keeps them
    staff_client.post(url, {**kept, "clear_shared_credentials": "on"})
    search_preset.refresh_from_db()
    assert search_preset.credentials_sealed == ""


async def test_exports_and_history_carry_no_credentials(standin, search_preset):
    client, _ = await browser_of("erin")
    socket = await socket_open("/ws/chat/exp/", headers=[ORIGIN, session_cookie_for(client)])
    await socket.send_json_to({"message": "find", "mcp_servers": ["acme/search@1.2.0"]})
    frames = await reply_collect(socket)
    await socket.disconnect()
    again = await socket_open("/ws/chat/exp/", headers=[ORIGIN, session_cookie_for(client)])
    await again.disconnect()
    assert SHARED_SECRET not in json.dumps([frames, again.history])
    for fmt in ("json", "md"):
        export = await sync_to_async(client.get)(f"/c/exp/export.{fmt}")
        assert export.status_code == 200
        assert SHARED_SECRET not in export.content.decode()


def test_the_admin_lists_users_credentials_by_name_only_and_cannot_add_them(staff_client, github_preset):
    user = get_user_model().objects.create_user("frank", password="pw-for-tests-only")
    credential = user_credentials_save(user_id=user.pk, preset=github_preset, values={"token": OWN_SECRET})
    listing = staff_client.get("/admin/conversations/mcpcredential/")
    assert listing.status_code == 200
    assert "frank" in listing.content.decode()
    assert OWN_SECRET not in listing.content.decode()
    detail = staff_client.get(f"/admin/conversations/mcpcredential/{credential.pk}/change/")
    assert detail.status_code == 200
    assert OWN_SECRET not in detail.content.decode()
    assert credential.sealed not in detail.content.decode()  # not even sealed
    assert staff_client.get("/admin/conversations/mcpcredential/add/").status_code == 403
