"""Feedback on replies: the `feedback` frame gives, changes and takes it back, for the conversation's
owner only; every socket of the conversation hears it (on every instance); history shows it; the admin
counts it per model, agent and day."""

from __future__ import annotations

import pytest

from conversations.models import Feedback, Message

from .chat_sockets import reply_collect, socket_open
from .rows import reply_row
from .servers import ChatClient
from .test_abuse_limits import anonymous_browser_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def first_reply(socket) -> int:
    await socket.send_json_to({"message": "a question [[standin tokens=3]]"})
    frames = await reply_collect(socket)
    assert frames[-1]["type"] == "done", frames
    return frames[0]["message_id"]


async def test_the_owner_gives_changes_and_takes_back_feedback_and_every_tab_hears_it(
    standin, replies_settle
):
    tab, other_tab = await socket_open("/ws/chat/fb/"), await socket_open("/ws/chat/fb/")
    reply_id = await first_reply(tab)
    await reply_collect(other_tab)

    await tab.send_json_to({"type": "feedback", "message_id": reply_id, "value": 1, "comment": "clear"})
    for socket in (tab, other_tab):
        assert await socket.receive_json_from(timeout=5) == {
            "type": "feedback",
            "message_id": reply_id,
            "value": 1,
            "comment": "clear",
        }
    await tab.send_json_to({"type": "feedback", "message_id": reply_id, "value": -1, "comment": "wrong date"})
    assert (await other_tab.receive_json_from(timeout=5))["value"] == -1
    await tab.receive_json_from(timeout=5)
    assert (await Feedback.objects.aget()).rating == Feedback.Rating.DOWN

    later = await socket_open("/ws/chat/fb/")
    question, reply = later.history["messages"]
    assert (question["feedback"], reply["feedback"]) == (None, {"value": -1, "comment": "wrong date"})

    await tab.send_json_to({"type": "feedback", "message_id": reply_id, "value": 0})
    assert await tab.receive_json_from(timeout=5) == {
        "type": "feedback",
        "message_id": reply_id,
        "value": 0,
        "comment": "",
    }
    assert not await Feedback.objects.aexists()
    for socket in (tab, other_tab, later):
        await socket.disconnect()


async def test_feedback_is_refused_on_others_replies_questions_and_bad_values_and_the_socket_goes_on(
    standin, replies_settle
):
    tab = await socket_open("/ws/chat/fb2/")
    reply_id = await first_reply(tab)
    question_id = (await Message.objects.aget(pk=reply_id)).parent_id
    stranger = await anonymous_browser_socket("fb2", "10.0.0.9")  # another browser, same session id
    refusals = [
        (stranger, {"type": "feedback", "message_id": reply_id, "value": 1}),  # another owner's
        (tab, {"type": "feedback", "message_id": question_id, "value": 1}),  # a question, not a reply
        (tab, {"type": "feedback", "message_id": reply_id, "value": 2}),
        (tab, {"type": "feedback", "message_id": reply_id, "value": True}),
        (tab, {"type": "feedback", "message_id": reply_id, "value": 1, "comment": "x" * 2001}),
        (tab, {"type": "feedback", "message_id": "1", "value": 1}),
    ]
    for socket, frame in refusals:
        await socket.send_json_to(frame)
        answer = await socket.receive_json_from(timeout=5)
        assert (answer["type"], answer["code"]) == ("error", "invalid_message"), (frame, answer)
    assert not await Feedback.objects.aexists()
    await tab.send_json_to({"type": "feedback", "message_id": reply_id, "value": 1})
    assert (await tab.receive_json_from(timeout=5))["value"] == 1
    await tab.disconnect()
    await stranger.disconnect()


@pytest.mark.subprocess
async def test_feedback_given_on_one_instance_reaches_a_tab_on_the_other(instances, http, standin):
    a, b = instances
    tab_b = await ChatClient(http, b, "fb-cross").connect()
    tab_a = await ChatClient(http, a, "fb-cross").connect()
    await tab_a.send({"message": "hello [[standin tokens=3]]"})
    reply_id = (await tab_a.until_end())[0]["message_id"]
    await tab_b.until_end()
    await tab_a.send({"type": "feedback", "message_id": reply_id, "value": 1, "comment": "good"})
    heard = await tab_b.receive()
    assert heard == {"type": "feedback", "message_id": reply_id, "value": 1, "comment": "good"}
    await tab_a.close()
    await tab_b.close()


def test_the_admin_lists_feedback_with_its_conversation_and_counts_it_per_model_agent_and_day(staff_client):
    from conversations.models import Conversation

    conversation = Conversation.objects.create(owner_key="k", session_id="fb3", title="Feedback")
    question = Message.objects.create(conversation=conversation, role="user", content="q")
    reply = reply_row(conversation, parent=question, agent_slug="researcher")
    Feedback.objects.create(message=reply, rating=Feedback.Rating.DOWN, comment="the figures are off")
    page = staff_client.get("/admin/conversations/feedback/").content.decode()
    assert "the figures are off" in page
    assert f"/admin/conversations/conversation/{reply.conversation_id}/change/" in page
    for table in ("feedback-by-model", "feedback-by-agent", "feedback-by-day"):
        body = page.split(f'id="{table}"')[1].split("</table>")[0]
        assert "<td>0</td><td>1</td>" in body, table  # none up, one down
    assert "openai/gpt-5.1" in page
    assert "researcher" in page
