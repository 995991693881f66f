"""The owner's conversation list, search, rename, delete and export: each only ever reaches one's own."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from conversations.models import Conversation, Message
from conversations.web.conversations import CONVERSATIONS_PAGE

pytestmark = pytest.mark.django_db


def signed_in(username: str) -> tuple[Client, str]:
    user = get_user_model().objects.create_user(username, password="pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return client, f"u:{user.pk}"


def conversation_with(owner_key: str, session_id: str, title: str, *turns: tuple[str, str]) -> Conversation:
    """A conversation whose turns form one thread, each message following the one before."""
    conversation = Conversation.objects.create(owner_key=owner_key, session_id=session_id, title=title)
    parent = None
    for role, content in turns:
        parent = Message.objects.create(
            conversation=conversation, parent=parent, role=role, content=content, model="openai/gpt-5.1"
        )
    conversation.current_message = parent
    conversation.save(update_fields=["current_message"])
    return conversation


@pytest.fixture
def alice_and_bob():
    alice, alice_key = signed_in("alice")
    bob, bob_key = signed_in("bob")
    conversation_with(
        alice_key, "a-1", "Trip to Lisbon", ("user", "plan a trip"), ("assistant", "Day one: Alfama")
    )
    conversation_with(alice_key, "a-2", "Soup", ("user", "a soup recipe"), ("assistant", "Leek and potato"))
    conversation_with(bob_key, "b-1", "Bob's secret", ("user", "bob only"), ("assistant", "noted"))
    return alice, bob


def test_the_list_shows_only_the_owners_conversations_newest_first(alice_and_bob):
    alice, bob = alice_and_bob
    Conversation.objects.filter(session_id="a-1").update(updated_at=timezone.now())  # touched last
    listed = alice.get("/api/conversations/").json()["conversations"]
    assert [c["session_id"] for c in listed] == ["a-1", "a-2"]
    assert [c["session_id"] for c in bob.get("/api/conversations/").json()["conversations"]] == ["b-1"]


def test_the_list_says_which_conversations_have_a_share_link(alice_and_bob):
    """The page opens a chat's share dialog without asking for a link it knows the chat has not."""
    alice, _ = alice_and_bob
    assert alice.post("/c/a-2/share", "{}", content_type="application/json").status_code == 200
    listed = alice.get("/api/conversations/").json()["conversations"]
    assert {c["session_id"]: c["shared"] for c in listed} == {"a-1": False, "a-2": True}


def test_the_list_comes_in_pages_and_says_when_another_follows():
    carol, carol_key = signed_in("carol")
    for i in range(CONVERSATIONS_PAGE + 5):
        conversation_with(carol_key, f"c-{i}", f"chat {i}", ("user", f"hello {i}"))
    first = carol.get("/api/conversations/").json()
    assert (len(first["conversations"]), first["has_more"]) == (CONVERSATIONS_PAGE, True)
    second = carol.get("/api/conversations/", {"offset": CONVERSATIONS_PAGE}).json()
    assert (len(second["conversations"]), second["has_more"]) == (5, False)
    listed = [c["session_id"] for c in first["conversations"] + second["conversations"]]
    assert sorted(listed) == sorted(f"c-{i}" for i in range(CONVERSATIONS_PAGE + 5))  # each exactly once


def test_search_finds_a_conversation_by_a_word_of_its_reply_or_title(alice_and_bob):
    alice, _ = alice_and_bob
    by_reply = alice.get("/api/conversations/", {"q": "alfama"}).json()["conversations"]
    assert [c["session_id"] for c in by_reply] == ["a-1"]
    assert [
        c["session_id"] for c in alice.get("/api/conversations/", {"q": "soup"}).json()["conversations"]
    ] == ["a-2"]
    assert alice.get("/api/conversations/", {"q": "secret"}).json()["conversations"] == []


def test_rename_and_delete_reach_only_ones_own_conversation(alice_and_bob):
    alice, bob = alice_and_bob
    assert alice.post("/c/a-1/rename", {"title": "  Lisbon,   in May "}).status_code == 200
    assert Conversation.objects.get(session_id="a-1").title == "Lisbon, in May"
    assert bob.post("/c/a-1/rename", {"title": "hijacked"}).status_code == 404
    assert alice.post("/c/a-1/rename", {"title": "   "}).json()["code"] == "invalid_message"
    assert bob.post("/c/a-2/delete").status_code == 404
    assert alice.post("/c/a-2/delete").status_code == 200
    assert set(Conversation.objects.values_list("session_id", flat=True)) == {"a-1", "b-1"}
    assert not Message.objects.filter(content="Leek and potato").exists()


def test_a_conversation_with_a_reply_streaming_cannot_be_deleted(alice_and_bob):
    alice, _ = alice_and_bob
    Message.objects.filter(content="Day one: Alfama").update(status="streaming")
    response = alice.post("/c/a-1/delete")
    assert (response.status_code, response.json()["code"]) == (409, "busy")
    assert Conversation.objects.filter(session_id="a-1").exists()


def test_rename_and_delete_need_post_and_a_csrf_token(alice_and_bob):
    alice, _ = alice_and_bob
    assert alice.get("/c/a-1/delete").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = alice.cookies
    assert strict.post("/c/a-1/delete").status_code == 403
    assert Conversation.objects.filter(session_id="a-1").exists()


def test_export_as_markdown_and_json_for_the_owner_only(alice_and_bob):
    alice, bob = alice_and_bob
    markdown = alice.get("/c/a-1/export.md")
    assert markdown["Content-Type"].startswith("text/markdown")
    assert markdown["Content-Disposition"] == 'attachment; filename="Trip to Lisbon.md"'  # by its title
    text = markdown.content.decode()
    assert text.startswith("# Trip to Lisbon")
    assert re.search(r"^## Assistant \(GPT-5\.1\) · ", text, re.MULTILINE)  # the model's label, not its id
    assert "openai/gpt-5.1" not in text
    assert re.search(r"^## You · \d{4}-\d\d-\d\d \d\d:\d\d UTC$", text, re.MULTILINE)  # readable times
    assert "plan a trip" in text
    assert "Day one: Alfama" in text
    exported = json.loads(alice.get("/c/a-1/export.json").content)
    assert [(m["role"], m["content"]) for m in exported["messages"]] == [
        ("user", "plan a trip"),
        ("assistant", "Day one: Alfama"),
    ]
    assert bob.get("/c/a-1/export.md").status_code == 404
    assert bob.get("/c/a-1/export.json").status_code == 404


@pytest.mark.parametrize(
    ("title", "disposition"),
    [
        ("Voyage à Lisbonne", "attachment; filename*=utf-8''Voyage%20%C3%A0%20Lisbonne.json"),
        ('../etc/"pass"\n:wd', 'attachment; filename="etc-pass-wd.json"'),
        ("", 'attachment; filename="chat-a-1.json"'),
    ],
)
def test_an_export_file_is_named_by_the_title_made_safe_for_a_file_name(alice_and_bob, title, disposition):
    Conversation.objects.filter(session_id="a-1").update(title=title)
    alice, _ = alice_and_bob
    assert alice.get("/c/a-1/export.json")["Content-Disposition"] == disposition


def test_search_matches_word_forms_not_just_substrings(alice_and_bob):
    alice, _ = alice_and_bob
    found = alice.get("/api/conversations/", {"q": "recipes"}).json()["conversations"]
    assert [c["session_id"] for c in found] == ["a-2"]  # "recipes" finds "a soup recipe"


def test_pinned_conversations_come_first_and_say_so(alice_and_bob):
    alice, bob = alice_and_bob
    Conversation.objects.filter(session_id="a-1").update(updated_at=timezone.now())  # a-1 is the newest
    before = Conversation.objects.get(session_id="a-2").updated_at
    pinned = alice.post("/c/a-2/pin", json.dumps({"pinned": True}), content_type="application/json")
    assert pinned.json() == {"pinned": True}
    listed = alice.get("/api/conversations/").json()["conversations"]
    assert [(c["session_id"], c["pinned"]) for c in listed] == [("a-2", True), ("a-1", False)]
    assert Conversation.objects.get(session_id="a-2").updated_at == before  # pinning is not activity
    alice.post("/c/a-2/pin", json.dumps({"pinned": False}), content_type="application/json")
    listed = alice.get("/api/conversations/").json()["conversations"]
    assert [(c["session_id"], c["pinned"]) for c in listed] == [("a-1", False), ("a-2", False)]


def test_pinning_another_owners_conversation_or_with_a_bad_body_is_refused(alice_and_bob):
    _, bob = alice_and_bob
    response = bob.post("/c/a-1/pin", json.dumps({"pinned": True}), content_type="application/json")
    assert (response.status_code, response.json()) == (404, {"code": "not_found"})
    for body in ("", "{", '{"pinned": "yes"}', "[true]"):
        response = bob.post("/c/b-1/pin", body, content_type="application/json")
        assert (response.status_code, response.json()["code"]) == (400, "invalid_pin")
    assert not Conversation.objects.filter(pinned_at__isnull=False).exists()
