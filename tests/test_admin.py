"""The operator's admin: every page renders, models and presets are editable, conversations read-only."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from conversations.models import ChatModel, Conversation, MCPServerPreset, Message

from .rows import reply_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored_turn():
    conversation = Conversation.objects.create(session_id="s1", title="a chat", model="openai/gpt-5.1")
    Message.objects.create(conversation=conversation, role="user", content="hello")
    reply = Message.objects.create(
        conversation=conversation, role="assistant", content="hi there", status="complete", total_tokens=7
    )
    return conversation, reply


def test_the_seed_migration_provides_the_three_original_models():
    assert list(ChatModel.objects.values_list("name", "is_default", "enabled")) == [
        ("openai/gpt-5.1", True, True),
        ("anthropic/claude-opus-4-5-20251101", False, True),
        ("google/gemini-3-pro-preview", False, True),
    ]
    assert ChatModel.objects.default_name() == "openai/gpt-5.1"


@pytest.mark.parametrize("model", [ChatModel, MCPServerPreset, Conversation, Message])
def test_every_changelist_and_change_page_renders(staff_client, stored_turn, model):
    MCPServerPreset.objects.create(label="Search", target="acme/search")
    obj = model.objects.first()
    meta = model._meta
    changelist = staff_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert changelist.status_code == 200
    change = staff_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk]))
    assert change.status_code == 200


def test_conversations_are_searchable_by_message_text_and_filterable(staff_client, stored_turn):
    url = reverse("admin:conversations_conversation_changelist")
    assert "a chat" in staff_client.get(url, {"q": "hi there"}).content.decode()
    assert "a chat" not in staff_client.get(url, {"q": "nowhere"}).content.decode()
    assert staff_client.get(url, {"messages__status__exact": "complete"}).status_code == 200
    assert staff_client.get(url, {"model": "openai/gpt-5.1"}).status_code == 200


def test_conversation_page_shows_its_messages_read_only(staff_client, stored_turn):
    conversation, _ = stored_turn
    page = staff_client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk]))
    html = page.content.decode()
    assert "hi there" in html
    assert 'name="messages-0-content"' not in html  # shown, not editable
    # Who owns it and who wrote its title are records, not settings: shown, never edited.
    assert 'name="owner_key"' not in html
    assert 'name="title_source"' not in html


def test_messages_cannot_be_changed_in_the_admin(staff_client, stored_turn):
    _, reply = stored_turn
    url = reverse("admin:conversations_message_change", args=[reply.pk])
    staff_client.post(url, {"content": "rewritten"})
    reply.refresh_from_db()
    assert reply.content == "hi there"


def test_the_default_model_moves_when_another_is_made_default(staff_client):
    opus = ChatModel.objects.get(name="anthropic/claude-opus-4-5-20251101")
    url = reverse("admin:conversations_chatmodel_change", args=[opus.pk])
    response = staff_client.post(
        url, {"name": opus.name, "label": opus.label, "enabled": "on", "is_default": "on", "position": 5}
    )
    assert response.status_code == 302
    assert list(ChatModel.objects.filter(is_default=True).values_list("name", flat=True)) == [opus.name]


def test_a_new_model_can_be_added_and_disabled_from_the_list(staff_client):
    add = reverse("admin:conversations_chatmodel_add")
    response = staff_client.post(
        add, {"name": "mistral/large", "label": "Mistral", "enabled": "on", "position": 40}
    )
    assert response.status_code == 302
    assert ChatModel.objects.enabled().filter(name="mistral/large").exists()


@pytest.mark.parametrize(
    ("target", "valid"),
    [
        ("acme/search", True),
        ("acme/search@v2", True),
        ("https://mcp.example.com/sse", True),
        ("http://mcp.example.com/sse", False),
        ("https://user:secret@mcp.example.com/", False),
        ("just-a-name", False),
        # An internal host may be a preset, but only written plainly, as the guard judges it.
        ("https://127.0.0.1:8443/mcp", True),
        ("https://tools.internal/mcp", True),
        ("https://127.1:8443/mcp", False),
        ("https://０x7f.0.0.1/mcp", False),
        ("https://%6c%6f%63%61%6c%68%6f%73%74/mcp", False),
    ],
)
def test_preset_targets_must_be_a_slug_or_an_https_url(staff_client, target, valid):
    add = reverse("admin:conversations_mcpserverpreset_add")
    response = staff_client.post(add, {"label": "X", "target": target, "enabled": "on", "position": 0})
    assert MCPServerPreset.objects.filter(target=target).exists() is valid
    if not valid:
        assert response.status_code == 200
        assert "errornote" in response.content.decode()


@pytest.mark.django_db
def test_the_admin_shows_servers_as_a_list_previews_long_messages_and_names_owners(
    staff_client, django_user_model
):
    from conversations.models import Conversation, Message
    from conversations.usage_ledger import reply_entries_write

    alice = django_user_model.objects.create_user("alice-admin", password="pw-for-tests-only")
    mine = Conversation.objects.create(
        session_id="adm1", owner_key=f"u:{alice.pk}", user=alice, mcp_servers=["acme/search", "acme/web@2"]
    )
    Message.objects.create(conversation=mine, role="user", content="word " * 500)
    mine_reply = reply_row(mine, content="ok", total_tokens=3)
    anonymous = Conversation.objects.create(session_id="adm2", owner_key="s:abcdef")
    anonymous_reply = reply_row(anonymous, content="hi", total_tokens=2)
    reply_entries_write([mine_reply.pk, anonymous_reply.pk])  # as their ends wrote them

    page = staff_client.get(f"/admin/conversations/conversation/{mine.pk}/change/").content.decode()
    assert "acme/search, acme/web@2" in page
    assert 'name="mcp_servers"' not in page
    assert "word " * 500 not in page
    assert ("word " * 30).strip() in page
    changelist = staff_client.get("/admin/conversations/conversation/").content.decode()
    assert "/admin/conversations/conversation/add/" not in changelist
    usage = staff_client.get("/admin/conversations/dailyusage/").content.decode()
    assert "alice-admin" in usage
    assert "anonymous" in usage
    assert "s:abcdef" not in usage


def test_lists_show_a_replys_model_an_agents_models_and_cut_titles(staff_client, stored_turn):
    from conversations.models import Agent, Feedback

    conversation, reply = stored_turn
    conversation.title = "a title that goes on " * 9
    conversation.save()
    reply.model = "openai/gpt-5.1"
    reply.save()
    Feedback.objects.create(message=reply, rating=Feedback.Rating.UP)
    Agent.objects.create(
        slug="helper", name="Helper", model_names=["openai/gpt-5.1", "google/gemini-3-pro-preview"]
    )

    feedback = staff_client.get("/admin/conversations/feedback/").content.decode()
    assert '<td class="field-reply_model">openai/gpt-5.1</td>' in feedback
    assert "None on reply None" not in feedback  # the admin's model class, once called on the row
    cut = "a title that goes on a title that goes on a title that goes…"
    assert cut in feedback
    assert cut in staff_client.get("/admin/conversations/message/").content.decode()
    assert cut in staff_client.get("/admin/conversations/conversation/").content.decode()
    agents = staff_client.get("/admin/conversations/agent/").content.decode()
    assert "openai/gpt-5.1, google/gemini-3-pro-preview" in agents


def test_the_attachments_list_names_owners_instead_of_their_keys(staff_client, django_user_model):
    from conversations.models import Attachment

    alice = django_user_model.objects.create_user("alice-files", password="pw-for-tests-only")
    for key, name in [
        (f"u:{alice.pk}", "mine.pdf"),
        ("s:0123456789abcdef", "theirs.pdf"),
        ("public", "open.pdf"),
    ]:
        Attachment.objects.create(
            owner_key=key, name=name, kind="pdf", content_type="application/pdf", size=1
        )

    page = staff_client.get("/admin/conversations/attachment/").content.decode()
    owners = re.findall(r'<td class="field-owner">([^<]*)</td>', page)
    assert sorted(owners) == ["alice-files", "anonymous", "public"]
    assert "0123456789abcdef" not in page


def test_the_admin_is_named_as_the_product_and_a_fresh_install_shows_its_first_steps(staff_client):
    home = staff_client.get(reverse("admin:index")).content.decode()
    assert "<title>Run the chat server | Dedalus Chat admin</title>" in home
    assert ">Dedalus Chat</a>" in home
    assert "Django administration" not in home
    preset_add = reverse("admin:conversations_mcpserverpreset_add")
    assert f'<a href="{preset_add}">Add an MCP server preset</a>' in home
    assert "Add an agent" in home

    MCPServerPreset.objects.create(label="Search", target="acme/search")
    home = staff_client.get(reverse("admin:index")).content.decode()
    assert "Add an MCP server preset" not in home  # done: no longer asked
    assert "Add an agent" in home
