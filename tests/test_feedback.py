"""Feedback on replies: given, changed and taken back by their owner only, shown in history, and counted
per model, agent and day in the admin."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from conversations.models import Conversation, Feedback, Message
from conversations.owners import ConversationRef, Owner
from conversations.selectors import conversation_history

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser() -> Client:
    client = Client()
    client.get("/c/fb/")
    return client


@pytest.fixture
def reply(browser: Client) -> Message:
    from django.conf import settings

    owner_key = Owner(session_key=browser.cookies[settings.SESSION_COOKIE_NAME].value).key
    conversation = Conversation.objects.create(owner_key=owner_key, session_id="fb", title="Feedback")
    question = Message.objects.create(conversation=conversation, role="user", content="q")
    return Message.objects.create(
        conversation=conversation,
        parent=question,
        role="assistant",
        content="a",
        model="openai/gpt-5.1",
        agent_slug="researcher",
        status="complete",
    )


def give(client: Client, message_id: int, **body):
    return client.post(
        f"/api/messages/{message_id}/feedback", json.dumps(body), content_type="application/json"
    )


def test_the_owner_gives_changes_and_takes_back_feedback_and_history_shows_it(browser, reply):
    assert give(browser, reply.pk, rating="up", comment="clear and right").json() == {
        "rating": "up",
        "comment": "clear and right",
    }
    assert give(browser, reply.pk, rating="down", comment="wrong date").json()["rating"] == "down"
    assert Feedback.objects.get().rating == Feedback.Rating.DOWN
    shown = conversation_history(ref=ConversationRef(reply.conversation.owner_key, "fb"))["messages"]
    assert (shown[0]["feedback"], shown[1]["feedback"]) == (None, {"rating": "down", "comment": "wrong date"})
    assert give(browser, reply.pk, rating=None).json() == {"rating": None, "comment": ""}
    assert not Feedback.objects.exists()


def test_feedback_is_refused_on_others_messages_questions_and_bad_values(browser, reply):
    stranger = Client()
    stranger.get("/c/elsewhere/")
    assert give(stranger, reply.pk, rating="up").status_code == 404
    assert give(browser, reply.parent_id, rating="up").status_code == 404  # a question, not a reply
    bad = give(browser, reply.pk, rating="meh")
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_feedback")
    assert give(browser, reply.pk, rating="up", comment="x" * 2001).status_code == 400
    csrf = Client(enforce_csrf_checks=True)
    csrf.cookies = browser.cookies
    assert give(csrf, reply.pk, rating="up").status_code == 403
    assert not Feedback.objects.exists()


def test_the_admin_lists_feedback_with_its_conversation_and_counts_it_per_model_agent_and_day(
    browser, reply, staff_client
):
    give(browser, reply.pk, rating="down", comment="the figures are off")
    page = staff_client.get("/admin/conversations/feedback/").content.decode()
    assert "the figures are off" in page
    assert f"/admin/conversations/conversation/{reply.conversation_id}/change/" in page
    for table in ("feedback-by-model", "feedback-by-agent", "feedback-by-day"):
        body = page.split(f'id="{table}"')[1].split("</table>")[0]
        assert "<td>0</td><td>1</td>" in body, table  # none up, one down
    assert "openai/gpt-5.1" in page
    assert "researcher" in page
