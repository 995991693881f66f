"""Share links: a read-only snapshot of a conversation's active branch at an unguessable URL, revocable by
its owner, optionally for signed-in users only, and continued by a viewer as a copy of their own."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from conversations.models import Attachment, Conversation, Message, Share

from .redis_keys import limits_forget
from .test_conversation_management import conversation_with, signed_in

pytestmark = pytest.mark.django_db

SHARED_URL_RE = re.compile(r"^http://testserver/s/([A-Za-z0-9_-]{22})/$")


def share(client: Client, session_id: str, **options: object):
    return client.post(f"/c/{session_id}/share", json.dumps(options), content_type="application/json")


def shared_messages(response) -> list[dict]:
    """The snapshot the shared page hands its script (json_script, as the page reads it)."""
    html = response.content.decode()
    match = re.search(r'<script id="shared-messages" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page carries its snapshot"
    return json.loads(match[1])


@pytest.fixture
def alice():
    client, key = signed_in("alice")
    conversation_with(
        key, "a-1", "Trip to Lisbon", ("user", "plan a trip"), ("assistant", "Day one: **Alfama**")
    )
    return client


def test_the_owner_shares_and_anyone_signed_out_reads_it_without_the_owners_identity(alice):
    response = share(alice, "a-1")
    assert response.status_code == 200
    url = response.json()["url"]
    assert SHARED_URL_RE.match(url)
    page = Client().get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Trip to Lisbon" in html
    assert [(m["role"], m["content"]) for m in shared_messages(page)] == [
        ("user", "plan a trip"),
        ("assistant", "Day one: **Alfama**"),
    ]
    assert "alice" not in html
    assert "u:" not in html
    assert "a-1" not in html
    assert 'id="continue-chat"' in html
    assert 'id="composer"' not in html
    assert 'id="sidebar"' not in html
    assert "<script>" not in html  # the CSP allows no inline script: data comes through json_script
    assert "no-cache" in page["Cache-Control"]


def test_the_owner_asks_for_the_link_and_sharing_again_keeps_the_url_with_a_fresh_snapshot(alice):
    assert alice.get("/c/a-1/share").status_code == 404  # not shared yet
    first = share(alice, "a-1").json()["url"]
    assert alice.get("/c/a-1/share").json()["url"] == first
    conversation = Conversation.objects.get(session_id="a-1")
    conversation.current_message = Message.objects.create(
        conversation=conversation, parent=conversation.current_message, role="user", content="and day two?"
    )
    conversation.save(update_fields=["current_message"])
    assert len(shared_messages(Client().get(first))) == 2  # frozen when shared
    assert share(alice, "a-1").json()["url"] == first
    assert shared_messages(Client().get(first))[-1]["content"] == "and day two?"


def test_a_login_only_share_sends_anonymous_viewers_to_the_login_page(alice):
    answer = share(alice, "a-1", login_required=True).json()
    assert answer["login_required"] is True
    path = answer["url"].removeprefix("http://testserver")
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/s/")
    assert Client().post(f"{path}continue").status_code == 302
    bob, _ = signed_in("bob")
    assert bob.get(path).status_code == 200


def test_revoking_makes_the_url_answer_404_with_a_page_that_leads_back(alice, settings):
    settings.DEBUG = True  # as make run has it: still not Django's technical page
    url = share(alice, "a-1").json()["url"]
    assert alice.delete("/c/a-1/share").json() == {"ok": True}
    gone = Client().get(url)
    assert gone.status_code == 404
    page = gone.content.decode()  # the product's page, with a way back, even with DEBUG on
    assert "This shared chat is not available" in page
    assert 'href="/">Start a new chat</a>' in page
    assert "Dedalus Chat" in page
    assert Client().post(f"{url}continue").status_code == 404
    assert alice.delete("/c/a-1/share").status_code == 404  # nothing left to revoke
    assert not Share.objects.exists()


def test_another_owners_conversation_looks_missing(alice):
    url = share(alice, "a-1").json()["url"]
    bob, _ = signed_in("bob")
    for response in (share(bob, "a-1"), bob.delete("/c/a-1/share"), bob.get("/c/a-1/share")):
        assert (response.status_code, response.json()) == (404, {"code": "not_found"})
    assert (share(bob, "nope").status_code, bob.delete("/c/nope/share").status_code) == (404, 404)
    assert Client().get(url).status_code == 200  # still shared
    assert Share.objects.count() == 1


def test_bad_options_are_refused_and_nothing_is_stored(alice):
    for body in ("{", "[1]", '{"login_required": "yes"}'):
        response = alice.post("/c/a-1/share", body, content_type="application/json")
        assert (response.status_code, response.json()["code"]) == (400, "invalid_share")
    assert not Share.objects.exists()
    assert alice.put("/c/a-1/share").status_code == 405


def test_sharing_and_revoking_need_the_csrf_token():
    user = get_user_model().objects.create_user("carol", password="pw-for-tests-only")
    conversation_with(f"u:{user.pk}", "c-1", "Carol's", ("user", "hi"), ("assistant", "hello"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert share(client, "c-1").status_code == 403
    assert client.delete("/c/c-1/share").status_code == 403
    assert not Share.objects.exists()
    client.get("/c/c-1/")  # the page sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/c/c-1/share", "{}", content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert response.status_code == 200
    path = response.json()["url"].removeprefix("http://testserver")
    viewer = Client(enforce_csrf_checks=True)
    assert viewer.post(f"{path}continue").status_code == 403  # continuing is a form post with its token
    page = viewer.get(path)
    form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    assert viewer.post(f"{path}continue", {"csrfmiddlewaretoken": form_token}).status_code == 302


def test_continuing_copies_into_the_viewers_own_namespace_and_leaves_the_original(alice):
    url = share(alice, "a-1").json()["url"]
    viewer = Client()
    response = viewer.post(f"{url}continue")
    assert response.status_code == 302
    new_id = re.fullmatch(r"/c/([A-Za-z0-9_-]+)/", response["Location"])[1]
    copy = Conversation.objects.get(session_id=new_id)
    assert copy.owner_key.startswith("s:")
    assert copy.owner_key == f"s:{copy.owner_session_key}"
    assert copy.title == "Trip to Lisbon"
    copied = list(Message.objects.history(copy))
    assert [(m.role, m.content, m.total_tokens) for m in copied] == [
        ("user", "plan a trip", None),
        ("assistant", "Day one: **Alfama**", None),
    ]
    assert copy.current_message_id == copied[-1].pk
    assert copied[1].parent_id == copied[0].pk
    listed = viewer.get("/api/conversations/").json()["conversations"]
    assert [c["session_id"] for c in listed] == [new_id]  # the viewer's own, in their list
    original = Conversation.objects.get(session_id="a-1")
    assert Message.objects.filter(conversation=original).count() == 2
    assert [c["session_id"] for c in alice.get("/api/conversations/").json()["conversations"]] == ["a-1"]
    bob, bob_key = signed_in("bob")
    signed_in_copy = bob.post(f"{url}continue")["Location"].split("/")[2]
    assert Conversation.objects.get(session_id=signed_in_copy).owner_key == bob_key


def test_deleting_the_conversation_kills_its_share(alice):
    url = share(alice, "a-1").json()["url"]
    assert alice.post("/c/a-1/delete").status_code == 200
    assert Client().get(url).status_code == 404
    assert not Share.objects.exists()


def test_only_the_active_branch_is_shared(alice):
    conversation = Conversation.objects.get(session_id="a-1")
    first_question = Message.objects.get(conversation=conversation, role="user")
    Message.objects.create(
        conversation=conversation, parent=first_question, role="assistant", content="other"
    )
    # The current message stays the first reply: the new version is on another branch.
    shown = shared_messages(Client().get(share(alice, "a-1").json()["url"]))
    assert [m["content"] for m in shown] == ["plan a trip", "Day one: **Alfama**"]
    assert [(m["id"], m["parent_id"], m["siblings"]) for m in shown] == [(1, None, [1]), (2, 1, [2])]


def test_attachments_are_named_in_a_share_but_their_files_are_never_served(client, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path), "base_url": None},
        },
    }
    client.get("/c/warmup/")  # the owner's browser session
    uploaded = client.post(
        "/api/attachments/", {"file": SimpleUploadedFile("notes.txt", b"secret notes", "text/plain")}
    ).json()
    owner_key = Attachment.objects.get().owner_key
    conversation = Conversation.objects.create(owner_key=owner_key, session_id="f-1", title="Files")
    Message.objects.create(
        conversation=conversation, role="user", content="see attached", attachment_ids=[uploaded["id"]]
    )
    url = share(client, "f-1").json()["url"]
    page = Client().get(url)
    (message,) = shared_messages(page)
    assert message["attachments"] == [
        {"name": "notes.txt", "size": 12, "content_type": "text/plain; charset=utf-8"}
    ]
    html = page.content.decode()
    assert uploaded["id"] not in html
    assert uploaded["url"] not in html
    assert Client().get(uploaded["url"]).status_code == 404  # the file stays its owner's
    assert client.get(uploaded["url"]).status_code == 200


def test_the_admin_lists_share_links_and_revokes_them(alice, admin_client):
    url = share(alice, "a-1").json()["url"]
    listing = admin_client.get("/admin/conversations/share/")
    assert listing.status_code == 200
    assert "Trip to Lisbon" in listing.content.decode()
    response = admin_client.post(
        "/admin/conversations/share/",
        {"action": "revoke", "_selected_action": [Share.objects.get().pk]},
        follow=True,
    )
    assert "Revoked 1 share link(s)" in response.content.decode()
    assert Client().get(url).status_code == 404
    assert Conversation.objects.filter(session_id="a-1").exists()  # the conversation stays


def test_retention_takes_a_shared_conversation_and_its_share_along(alice):
    from datetime import timedelta

    from django.utils import timezone

    from conversations.chat.upkeep import conversations_purge

    url = share(alice, "a-1").json()["url"]
    Conversation.objects.filter(session_id="a-1").update(updated_at=timezone.now() - timedelta(days=400))
    assert conversations_purge(older_than_days=365) == 1
    assert Client().get(url).status_code == 404
    assert not Share.objects.exists()


MCP_URL_WITH_TOKEN = "https://mcp.example.com/u/7/sse?token=mcp-secret-token"
TOOL_ACTIVITY = [
    {
        "phase": "call",
        "name": "search",
        "arguments": {"q": "Alfama"},
        "result": None,
        "server": MCP_URL_WITH_TOKEN,
        "is_error": False,
        "duration_ms": None,
    },
    {
        "phase": "result",
        "name": "search",
        "arguments": None,
        "result": "Alfama is Lisbon's oldest district",
        "server": MCP_URL_WITH_TOKEN,
        "is_error": False,
        "duration_ms": 12.5,
    },
]
TOOL_ACTIVITY_SHARED = [
    {key: value for key, value in activity.items() if key != "server"} for activity in TOOL_ACTIVITY
]


def test_a_share_keeps_a_tools_name_arguments_and_result_but_never_its_server(alice):
    Message.objects.filter(role="assistant").update(tools=TOOL_ACTIVITY)
    url = share(alice, "a-1").json()["url"]
    assert MCP_URL_WITH_TOKEN not in json.dumps(Share.objects.get().messages)
    page = Client().get(url)
    assert MCP_URL_WITH_TOKEN not in page.content.decode()
    assert shared_messages(page)[1]["tools"] == TOOL_ACTIVITY_SHARED


def test_a_snapshot_stored_with_tool_servers_is_served_and_continued_without_them(alice):
    url = share(alice, "a-1").json()["url"]
    stored = Share.objects.get()
    stored.messages[1]["tools"] = TOOL_ACTIVITY  # as shares taken before servers were left out hold them
    stored.messages[1]["mcp_servers"] = [MCP_URL_WITH_TOKEN]
    stored.save()
    page = Client().get(url)
    assert MCP_URL_WITH_TOKEN not in page.content.decode()
    assert shared_messages(page)[1]["tools"] == TOOL_ACTIVITY_SHARED
    copy_id = Client().post(f"{url}continue")["Location"].split("/")[2]
    copied = Message.objects.get(conversation__session_id=copy_id, role="assistant")
    assert copied.tools == TOOL_ACTIVITY_SHARED


def test_the_migration_clears_tool_servers_from_stored_snapshots(alice):
    from importlib import import_module

    from django.apps import apps

    share(alice, "a-1")
    Share.objects.update(
        messages=[
            {"role": "assistant", "content": "hi", "tools": TOOL_ACTIVITY},
            {"role": "user", "tools": []},
        ]
    )
    import_module("conversations.migrations.0024_share_tools_without_server").tool_servers_drop(apps, None)
    assert Share.objects.get().messages == [
        {"role": "assistant", "content": "hi", "tools": TOOL_ACTIVITY_SHARED},
        {"role": "user", "tools": []},
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("revoked_by", ["owner", "admin"])
def test_revoking_while_the_link_is_updated_never_brings_the_old_link_back(revoked_by):
    import threading

    from django.db import connection

    user = get_user_model().objects.create_user("dora", password="pw-for-tests-only")
    conversation_with(f"u:{user.pk}", "d-1", "Race", ("user", "hi"), ("assistant", "hello"))
    updater, owner = Client(), Client()
    updater.force_login(user)
    owner.force_login(user)
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", password="pw-for-tests-only"))

    def revoke() -> None:
        if revoked_by == "owner":
            owner.delete("/c/d-1/share")
        else:  # the admin's Revoke action deletes the row without the owner's path
            pks = list(Share.objects.values_list("pk", flat=True))
            admin.post("/admin/conversations/share/", {"action": "revoke", "_selected_action": pks})

    def at_once(*calls):
        barrier = threading.Barrier(len(calls))

        def run(call):
            try:
                barrier.wait()
                call()
            finally:
                connection.close()  # each thread's own connection

        threads = [threading.Thread(target=run, args=(call,)) for call in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    came_back = 0
    for _ in range(30):
        url = share(updater, "d-1").json()["url"]
        at_once(lambda: share(updater, "d-1"), revoke)
        came_back += Client().get(url).status_code != 404
        owner.delete("/c/d-1/share")  # a link the update made after the revoke is another link
    assert came_back == 0


@pytest.fixture
def share_rates_clean(settings):
    """No continues counted yet (the counts live in Redis, across tests)."""
    limits_forget()


def test_continuing_is_limited_per_client_address_for_anonymous_viewers(alice, settings, share_rates_clean):
    settings.CHAT_ANONYMOUS_SHARE_CONTINUE_RATE_LIMIT = "3/hour"
    url = share(alice, "a-1").json()["url"]
    answers = [Client(REMOTE_ADDR="203.0.113.9").post(f"{url}continue") for _ in range(5)]
    assert [answer.status_code for answer in answers] == [302, 302, 302, 429, 429]
    refused = answers[-1]
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert "You have continued too many shared chats" in refused.content.decode()
    assert 'id="continue-chat"' in refused.content.decode()  # the shared page, with why it refused
    assert Conversation.objects.count() == 1 + 3  # a refused continue copies nothing
    assert Message.objects.count() == 2 * (1 + 3)
    assert Client(REMOTE_ADDR="198.51.100.7").post(f"{url}continue").status_code == 302  # another address


def test_continuing_is_limited_per_viewer(alice, settings, share_rates_clean):
    settings.CHAT_SHARE_CONTINUE_RATE_LIMIT = "2/hour"
    url = share(alice, "a-1").json()["url"]
    bob, bob_key = signed_in("bob")
    assert [bob.post(f"{url}continue").status_code for _ in range(3)] == [302, 302, 429]
    bob.defaults["REMOTE_ADDR"] = "198.51.100.7"
    assert bob.post(f"{url}continue").status_code == 429  # the viewer's count, wherever they are
    assert Conversation.objects.filter(owner_key=bob_key).count() == 2
    viewer = Client()
    assert [viewer.post(f"{url}continue").status_code for _ in range(3)] == [302, 302, 429]


def long_conversation(owner_key: str, session_id: str, turns: int, reply: str = "an answer"):
    pairs = [pair for n in range(turns) for pair in (("user", f"question {n}"), ("assistant", reply))]
    return conversation_with(owner_key, session_id, "Long", *pairs)


def test_sharing_past_the_snapshot_caps_is_refused_with_a_clear_code(settings):
    alice, key = signed_in("alice")
    long_conversation(key, "long", turns=3)
    settings.CHAT_SHARE_MAX_MESSAGES = 5
    refused = share(alice, "long")
    assert refused.status_code == 413
    assert refused.json()["code"] == "share_too_large"
    assert "5 messages" in refused.json()["message"]
    assert not Share.objects.exists()
    settings.CHAT_SHARE_MAX_MESSAGES = 6
    url = share(alice, "long").json()["url"]
    settings.CHAT_SHARE_MAX_BYTES = 200
    refused = share(alice, "long")  # taking it again past the byte cap keeps the snapshot as it was
    assert (refused.status_code, refused.json()["code"]) == (413, "share_too_large")
    assert len(shared_messages(Client().get(url))) == 6


def test_a_stored_snapshot_over_the_caps_is_shown_but_not_continued(alice, settings):
    url = share(alice, "a-1").json()["url"]
    settings.CHAT_SHARE_MAX_MESSAGES = 1  # lowered after it was shared
    assert Client().get(url).status_code == 200
    refused = Client().post(f"{url}continue")
    assert refused.status_code == 413
    assert "too long to continue" in refused.content.decode()
    assert Conversation.objects.count() == 1


def test_continuing_copies_a_snapshot_in_a_fixed_number_of_queries():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    alice, key = signed_in("alice")
    queries = []
    for session_id, turns in (("short", 1), ("long", 40)):
        long_conversation(key, session_id, turns=turns)
        url = share(alice, session_id).json()["url"]
        viewer = Client()
        viewer.get(url)  # the viewer's session exists before the count
        with CaptureQueriesContext(connection) as captured:
            assert viewer.post(f"{url}continue").status_code == 302
        queries.append(len(captured))
        copy = Conversation.objects.get(session_id=viewer.post(f"{url}continue")["Location"].split("/")[2])
        copied = list(Message.objects.history(copy))
        assert len(copied) == 2 * turns
        assert [m.parent_id for m in copied] == [None, *(m.pk for m in copied[:-1])]
        assert copy.current_message_id == copied[-1].pk
    assert queries[0] == queries[1]


def test_continuing_works_uncounted_while_the_limits_storage_is_down(alice, settings, caplog):
    settings.CHAT_REDIS_TIMEOUT = 0.5
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.CHAT_SHARE_CONTINUE_RATE_LIMIT = "1/hour"
    settings.CHAT_ANONYMOUS_SHARE_CONTINUE_RATE_LIMIT = "1/hour"
    url = share(alice, "a-1").json()["url"]
    viewer = Client()
    assert [viewer.post(f"{url}continue").status_code for _ in range(2)] == [302, 302]
    assert "request not counted" in caplog.text


def test_a_shared_api_conversations_tool_calls_and_results_are_continued_as_they_were(alice):
    calls = [{"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
    conversation = Conversation.objects.get(session_id="a-1")
    reply = Message.objects.filter(role="assistant").get()
    reply.tool_calls = calls
    reply.save(update_fields=["tool_calls"])
    result = Message.objects.create(
        conversation=conversation, parent=reply, role="tool", content="Noon", tool_call_id="call_1"
    )
    conversation.current_message = result
    conversation.save(update_fields=["current_message"])

    url = share(alice, "a-1").json()["url"]
    shown = shared_messages(Client().get(url))
    copy_id = Client().post(f"{url}continue")["Location"].split("/")[2]

    assert [(m["role"], m["tool_calls"], m["tool_call_id"]) for m in shown[1:]] == [
        ("assistant", calls, ""),
        ("tool", [], "call_1"),
    ]
    copied = Message.objects.filter(conversation__session_id=copy_id).order_by("pk")
    assert [(m.role, m.tool_calls, m.tool_call_id) for m in copied][1:] == [
        ("assistant", calls, ""),
        ("tool", [], "call_1"),
    ]
