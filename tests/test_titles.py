"""Titles: the first message's cleaned line at once, the model's after the first reply (asked of the
stand-in over HTTP), never over a title the user wrote, and told to every socket of the conversation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.conf import settings
from django.test import AsyncClient

from conversations.chat.titles import TITLE_INSTRUCTIONS, title_first_line, title_from_model
from conversations.models import Conversation, UsageEntry
from conversations.relay import instance

from .chat_sockets import BROWSER_SESSION_KEY, reply_collect, socket_open
from .processes import DaphneServer
from .servers import ChatClient, until
from .standin_control import StandIn

TITLE_MODEL = "openai/gpt-5-mini"


@pytest.fixture
def model_titles(settings: Any) -> None:
    """Titles written by the model (the suite runs without them)."""
    settings.CHAT_TITLE_MODEL = TITLE_MODEL
    settings.CHAT_TITLE_TIMEOUT = 5


def browser_client() -> AsyncClient:
    client = AsyncClient()
    client.cookies[settings.SESSION_COOKIE_NAME] = BROWSER_SESSION_KEY
    return client


async def titles_settle() -> None:
    """Wait for the title requests in flight (they run as the instance's reply tasks)."""
    await (await instance.instance_get()).replies_drain_for_testing()


async def listed_title(session_id: str) -> str:
    listed = (await browser_client().get("/api/conversations/")).json()["conversations"]
    return next(entry["title"] for entry in listed if entry["session_id"] == session_id)


def test_the_first_line_drops_directives_markdown_and_spare_whitespace() -> None:
    assert title_first_line("  hello   there\n\nsecond line") == "hello there"
    assert title_first_line("[[standin reply=Hello%20there]] what is   new?") == "what is new?"
    assert title_first_line("\n\n## **Plan** my `trip` to [Lisbon](https://example.com)\nmore") == (
        "Plan my trip to Lisbon"
    )
    assert title_first_line("> - 1. snake_case stays") == "snake_case stays"
    assert title_first_line("[[standin tokens=3]]") == ""


def test_a_long_first_line_is_cut_at_a_word_boundary() -> None:
    line = "one two three four five six seven eight nine ten eleven twelve thirteen"
    title = title_first_line(line)
    assert title == "one two three four five six seven eight nine ten eleven…"
    assert len(title) <= 60
    assert title_first_line("x" * 80) == "x" * 59 + "…"


def test_a_models_answer_loses_its_quotes_label_and_final_period() -> None:
    assert title_from_model('"Trip to Lisbon."') == "Trip to Lisbon"
    assert title_from_model("Title: **Trip to Lisbon**\nextra") == "Trip to Lisbon"
    assert title_from_model("   ") == ""


@pytest.mark.django_db(transaction=True)
async def test_the_first_reply_is_followed_by_the_models_title_everywhere(
    chat_socket, standin: StandIn, model_titles: None
) -> None:
    await chat_socket.send_json_to({"message": "Tell me a story about dragons [[standin tokens=6]]"})
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done"
    assert (await Conversation.objects.aget(session_id="t1")).title == "Tell me a story about dragons"

    assert await chat_socket.receive_json_from(timeout=10) == {
        "type": "title",
        "title": "Story about dragons",
    }
    conversation = await Conversation.objects.aget(session_id="t1")
    assert (conversation.title, conversation.title_source) == ("Story about dragons", "model")

    reply_request, title_request = standin.requests()
    assert (reply_request["kind"], title_request["kind"]) == ("reply", "title")
    body = title_request["body"]
    assert (body["model"], body.get("stream")) == (TITLE_MODEL, None)
    system, user = body["messages"]
    assert system == {"role": "system", "content": TITLE_INSTRUCTIONS}
    assert user["content"].startswith("User: Tell me a story about dragons\n\nAssistant: You asked:")
    assert "[[standin" not in user["content"]

    billed = await UsageEntry.objects.aget(kind="title")
    assert (billed.owner_key, billed.conversation_id, billed.model) == (
        conversation.owner_key,
        conversation.pk,
        TITLE_MODEL,
    )
    assert billed.total_tokens > 0
    assert billed.total_tokens == billed.prompt_tokens + billed.completion_tokens

    again = await socket_open("/ws/chat/t1/")
    assert again.history["conversation"]["title"] == "Story about dragons"
    await again.disconnect()
    assert await listed_title("t1") == "Story about dragons"


@pytest.mark.django_db(transaction=True)
async def test_a_failed_title_request_leaves_the_cleaned_first_line(
    chat_socket, standin: StandIn, model_titles: None
) -> None:
    standin.title_script({"status": 500})
    await chat_socket.send_json_to(
        {"message": "## **Plan** my   trip to Lisbon [[standin tokens=4]]\nin May"}
    )
    assert (await reply_collect(chat_socket))[-1]["type"] == "done"
    await titles_settle()

    assert await chat_socket.receive_nothing(timeout=0.3)
    assert [(r["kind"], r["outcome"]) for r in standin.requests()] == [
        ("reply", "completed"),
        ("title", "error_status"),
    ]
    conversation = await Conversation.objects.aget(session_id="t1")
    assert (conversation.title, conversation.title_source) == ("Plan my trip to Lisbon", "first_line")
    assert await listed_title("t1") == "Plan my trip to Lisbon"


@pytest.mark.django_db(transaction=True)
async def test_a_title_request_past_its_timeout_is_given_up(
    chat_socket, standin: StandIn, model_titles: None, settings: Any
) -> None:
    settings.CHAT_TITLE_TIMEOUT = 0.5
    standin.title_script({"first_delay_ms": 8000})
    await chat_socket.send_json_to({"message": "slow title please [[standin tokens=3]]"})
    assert (await reply_collect(chat_socket))[-1]["type"] == "done"
    async with asyncio.timeout(6):  # given up at 0.5 s, long before the answer would come
        await titles_settle()
    assert await chat_socket.receive_nothing(timeout=0.3)
    assert (await Conversation.objects.aget(session_id="t1")).title == "slow title please"


@pytest.mark.django_db(transaction=True)
async def test_a_title_the_user_wrote_is_never_overwritten(
    chat_socket, standin: StandIn, model_titles: None
) -> None:
    standin.title_script({"first_delay_ms": 3000})  # the rename lands while the model writes its title
    await chat_socket.send_json_to({"message": "name me later [[standin tokens=3]]"})
    assert (await reply_collect(chat_socket))[-1]["type"] == "done"

    async def title_asked() -> bool:
        return [r["kind"] for r in standin.requests()] == ["reply", "title"]

    await until(title_asked, wait=5)  # the model is now writing its title
    renamed = await browser_client().post("/c/t1/rename", {"title": "  My   own title "})
    assert renamed.status_code == 200
    assert await chat_socket.receive_json_from(timeout=10) == {"type": "title", "title": "My own title"}
    await titles_settle()

    assert [r["kind"] for r in standin.requests()] == ["reply", "title"]  # asked, then not stored
    assert await chat_socket.receive_nothing(timeout=0.3)
    conversation = await Conversation.objects.aget(session_id="t1")
    assert (conversation.title, conversation.title_source) == ("My own title", "user")
    assert await listed_title("t1") == "My own title"


@pytest.mark.django_db(transaction=True)
async def test_only_the_first_reply_asks_for_a_title(
    chat_socket, standin: StandIn, model_titles: None
) -> None:
    await chat_socket.send_json_to({"message": "first **question** [[standin tokens=3]]"})
    first = await reply_collect(chat_socket)
    assert first[-1]["type"] == "done"
    assert first[0]["title"] == "first question"  # the start of the first turn: the cleaned first line
    assert (await chat_socket.receive_json_from(timeout=10))["type"] == "title"
    await chat_socket.send_json_to({"message": "second question [[standin tokens=3]]"})
    second = await reply_collect(chat_socket)
    assert second[-1]["type"] == "done"
    assert "title" not in second[0]  # a later turn's start carries none
    await titles_settle()

    assert await chat_socket.receive_nothing(timeout=0.3)
    assert [r["kind"] for r in standin.requests()] == ["reply", "title", "reply"]
    assert (await Conversation.objects.aget(session_id="t1")).title == "First question"


@pytest.mark.django_db(transaction=True)
async def test_without_a_title_model_the_first_line_stays_and_nothing_is_asked(
    chat_socket, standin: StandIn, settings: Any
) -> None:
    settings.CHAT_TITLE_MODEL = ""
    await chat_socket.send_json_to({"message": "just the line [[standin tokens=3]]"})
    assert (await reply_collect(chat_socket))[-1]["type"] == "done"
    await titles_settle()
    assert await chat_socket.receive_nothing(timeout=0.3)
    assert [r["kind"] for r in standin.requests()] == ["reply"]
    assert (await Conversation.objects.aget(session_id="t1")).title == "just the line"


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
async def test_a_tab_on_the_other_instance_gets_the_title_frame(instances_started, http, standin) -> None:
    a, b = instances_started(CHAT_TITLE_MODEL=TITLE_MODEL)
    assert isinstance(a, DaphneServer)
    tab_b = await ChatClient(http, b, "titled").connect()
    tab_a = await ChatClient(http, a, "titled").connect()
    await tab_a.send({"message": "Compare Lisbon and Porto [[standin tokens=5]]"})
    frames_a, frames_b = await asyncio.gather(tab_a.until_end(), tab_b.until_end())
    assert (frames_a[-1]["type"], frames_b[-1]["type"]) == ("done", "done")

    expected = {"type": "title", "title": "Compare Lisbon Porto"}
    assert await tab_a.receive() == expected
    # B hears of the title through the instances' events, which may outrun the reply's end it reads from
    # the reply log: the title frame may come before B's `done`.
    heard_b = [frame for frame in frames_b if frame["type"] == "title"] or [await tab_b.receive()]
    assert heard_b == [expected]
    await tab_a.close()
    await tab_b.close()
