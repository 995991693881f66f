"""An agent answering a conversation, through the real socket and real HTTP to the stand-in: what goes
upstream, what each reply records, what history shows, and what is refused."""

from __future__ import annotations

import pytest

from conversations.chat.selectors import new_chat_answerer
from conversations.models import Agent, Conversation, Message

from .chat_sockets import reply_collect, socket_open

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = ["openai/gpt-5.1", "anthropic/claude-opus-4-5-20251101"]


@pytest.fixture
async def researcher() -> Agent:
    return await Agent.objects.acreate(
        slug="researcher",
        name="Researcher",
        instructions="You are a careful researcher. Cite every claim.",
        model_names=MODELS,
        settings={"temperature": 0.2, "max_tokens": 300, "reasoning_effort": "high"},
        mcp_servers=["acme/search@1.2.0"],
    )


async def test_an_agents_instructions_models_and_settings_reach_the_upstream_request_exactly(
    chat_socket, standin, researcher
):
    await chat_socket.send_json_to({"message": "what is new?", "agent": "researcher"})
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done", frames[-1]

    (request,) = standin.requests()
    body = request["body"]
    assert body["messages"] == [
        {"role": "system", "content": "You are a careful researcher. Cite every claim."},
        {"role": "user", "content": "what is new?"},
    ]
    assert body["model"] == MODELS  # the first answers, the second may take over
    assert (body["temperature"], body["max_tokens"], body["reasoning_effort"]) == (0.2, 300, "high")
    assert body["mcp_servers"] == [{"slug": "acme/search", "version": "1.2.0"}]  # the SDK's wire form

    reply = await Message.objects.aget(pk=frames[0]["message_id"])
    assert reply.agent_slug == "researcher"
    assert reply.request_models == MODELS
    assert reply.request_settings == {"temperature": 0.2, "max_tokens": 300, "reasoning_effort": "high"}
    assert reply.served_models == ["openai/gpt-5.1"]  # the model its chunks named
    conversation = await Conversation.objects.aget(session_id="t1")
    assert (conversation.agent_id, conversation.model) == (researcher.pk, "openai/gpt-5.1")


async def test_history_shows_the_conversations_agent_and_each_replys_agent_and_serving_models(
    chat_socket, standin, researcher
):
    await chat_socket.send_json_to({"message": "hello", "agent": "researcher"})
    await reply_collect(chat_socket)

    again = await socket_open("/ws/chat/t1/")
    history = again.history
    assert history["conversation"]["agent"] == "researcher"
    user, reply = history["messages"]
    assert (user["agent"], user["served_models"]) == (None, [])
    assert (reply["agent"], reply["served_models"]) == ("researcher", ["openai/gpt-5.1"])
    await again.disconnect()


async def test_later_messages_keep_the_agent_and_a_model_chosen_instead_leaves_it(
    chat_socket, standin, researcher
):
    await chat_socket.send_json_to({"message": "one", "agent": "researcher"})
    await reply_collect(chat_socket)
    await chat_socket.send_json_to({"message": "two"})
    await reply_collect(chat_socket)
    await chat_socket.send_json_to({"message": "three", "model": "google/gemini-3-pro-preview"})
    await reply_collect(chat_socket)

    first, second, third = (request["body"] for request in standin.requests())
    assert second["model"] == MODELS
    assert second["messages"][0]["role"] == "system"
    assert third["model"] == "google/gemini-3-pro-preview"
    assert [message["role"] for message in third["messages"]] == ["user", "assistant"] * 2 + ["user"]
    assert "temperature" not in third
    conversation = await Conversation.objects.aget(session_id="t1")
    assert conversation.agent_id is None
    last = await Message.objects.filter(role="assistant").alast()
    assert (last.agent_slug, last.request_models) == ("", ["google/gemini-3-pro-preview"])


async def test_editing_an_agent_leaves_the_record_of_past_replies_intact(chat_socket, standin, researcher):
    await chat_socket.send_json_to({"message": "before the edit", "agent": "researcher"})
    frames = await reply_collect(chat_socket)

    researcher.model_names = ["google/gemini-3-pro-preview"]
    researcher.settings = {"temperature": 1.5}
    await researcher.asave()
    await chat_socket.send_json_to({"message": "after the edit"})
    await reply_collect(chat_socket)

    old = await Message.objects.aget(pk=frames[0]["message_id"])
    assert (old.request_models, old.request_settings["temperature"]) == (MODELS, 0.2)
    new = await Message.objects.filter(role="assistant").alast()
    assert (new.request_models, new.request_settings) == (
        ["google/gemini-3-pro-preview"],
        {"temperature": 1.5},
    )


@pytest.mark.parametrize("slug", ["nobody", "hidden"])
async def test_an_unknown_or_disabled_agent_is_refused_and_nothing_is_stored(chat_socket, standin, slug):
    await Agent.objects.acreate(slug="hidden", name="Hidden", model_names=MODELS, enabled=False)
    await chat_socket.send_json_to({"message": "hi", "agent": slug})
    frame = await chat_socket.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "unknown_agent")
    assert await Message.objects.acount() == 0
    assert not await Conversation.objects.aexists()
    assert standin.requests() == []
    await chat_socket.send_json_to({"message": "still usable"})
    assert (await reply_collect(chat_socket))[-1]["type"] == "done"


async def test_an_agent_that_keeps_its_models_refuses_a_model_from_the_frame(
    chat_socket, standin, researcher
):
    await chat_socket.send_json_to({"message": "hi", "agent": "researcher", "model": "openai/gpt-5.1"})
    frame = await chat_socket.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "unknown_model")

    researcher.user_may_change_model = True
    await researcher.asave()
    await chat_socket.send_json_to(
        {"message": "hi", "agent": "researcher", "model": "anthropic/claude-opus-4-5-20251101"}
    )
    assert (await reply_collect(chat_socket))[-1]["type"] == "done"
    (request,) = standin.requests()
    assert request["body"]["model"] == ["anthropic/claude-opus-4-5-20251101", "openai/gpt-5.1"]


async def test_the_default_agent_answers_a_new_conversation(chat_socket, standin, researcher):
    researcher.is_default = True
    await researcher.asave()
    await chat_socket.send_json_to({"message": "hello"})
    await reply_collect(chat_socket)
    (request,) = standin.requests()
    assert request["body"]["model"] == MODELS
    assert (await Conversation.objects.aget(session_id="t1")).agent_id == researcher.pk


async def test_a_new_chats_history_names_the_default_agent_so_a_page_picks_it(researcher):
    """The page sets its picker from the `history` frame: a chat not stored yet must name the agent its
    first message goes to, or the page would switch to a plain model and the default agent never answer."""
    researcher.is_default = True
    researcher.model_names = [MODELS[1], MODELS[0]]  # answers with another than the default model
    await researcher.asave()
    tab = await socket_open("/ws/chat/new-chat/")
    conversation = tab.history["conversation"]
    assert (conversation["agent"], conversation["model"]) == ("researcher", MODELS[1])
    await tab.disconnect()

    researcher.enabled = False  # a disabled default is no default: the default model, no agent
    await researcher.asave()
    tab = await socket_open("/ws/chat/new-chat/")
    conversation = tab.history["conversation"]
    assert conversation["agent"] is None
    assert conversation["model"] == "openai/gpt-5.1"
    await tab.disconnect()


async def test_a_handoff_mid_reply_is_recorded_in_the_order_the_models_wrote(
    chat_socket, standin, researcher
):
    await chat_socket.send_json_to(
        {
            "message": "hand over [[standin reply=one%20two%20three%20four%20five handoff_after=3]]",
            "agent": "researcher",
        }
    )
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done", frames[-1]

    reply = await Message.objects.aget(pk=frames[0]["message_id"])
    assert reply.served_models == MODELS
    # Where the second model began: after the first three tokens, "one two three ".
    assert reply.content == "one two three four five"
    handoffs = [{"model": MODELS[1], "offset": len("one two three ")}]
    assert frames[-1]["handoffs"] == handoffs
    assert reply.handoff_offsets == [len("one two three ")]
    again = await socket_open("/ws/chat/t1/")
    assert again.history["messages"][-1]["served_models"] == MODELS
    assert again.history["messages"][-1]["handoffs"] == handoffs
    await again.disconnect()


@pytest.fixture
async def tunable() -> Agent:
    return await Agent.objects.acreate(
        slug="tunable",
        name="Tunable",
        model_names=["openai/gpt-5.1"],
        settings={"temperature": 0.2, "top_p": 0.9},
        user_may_change_settings=True,
    )


async def test_a_users_settings_go_over_the_agents_and_stay_with_the_conversation(
    chat_socket, standin, tunable
):
    mine = {"temperature": 0.9, "max_tokens": 500, "reasoning_effort": "low"}
    await chat_socket.send_json_to({"message": "one", "agent": "tunable", "settings": mine})
    assert (await reply_collect(chat_socket))[-1]["type"] == "done"
    await chat_socket.send_json_to({"message": "two"})  # no settings: the conversation's stay
    assert (await reply_collect(chat_socket))[-1]["type"] == "done"

    first, second = (request["body"] for request in standin.requests())
    for body in (first, second):
        assert (body["temperature"], body["top_p"], body["max_tokens"], body["reasoning_effort"]) == (
            0.9,
            0.9,
            500,
            "low",
        )
    conversation = await Conversation.objects.aget(session_id="t1")
    assert conversation.settings == mine
    reply = await Message.objects.filter(role="assistant").alatest("id")
    assert reply.request_settings == {"top_p": 0.9, **mine}
    again = await socket_open("/ws/chat/t1/")
    assert again.history["conversation"]["settings"] == mine
    await again.disconnect()


async def test_settings_out_of_range_beyond_the_models_limit_or_of_a_fixed_agent_are_refused(
    chat_socket, standin, researcher
):
    from conversations.models import ChatModel

    await ChatModel.objects.filter(name="openai/gpt-5.1").aupdate(output_token_limit=1000)
    refused = [
        ({"temperature": 7}, "temperature"),
        ({"max_tokens": 5000}, "at most 1000"),
        ({"top_p": 0.5}, "a user may set"),
        ("hot", "must be an object"),
    ]
    for settings, words in refused:
        await chat_socket.send_json_to({"message": "x", "model": "openai/gpt-5.1", "settings": settings})
        (error,) = await reply_collect(chat_socket)
        assert (error["type"], error["code"]) == ("error", "invalid_settings"), error
        assert words in error["message"]
    await chat_socket.send_json_to({"message": "x", "agent": "researcher", "settings": {"temperature": 1}})
    (error,) = await reply_collect(chat_socket)
    assert error["code"] == "invalid_settings"
    assert "own settings" in error["message"]
    assert standin.requests() == []  # nothing went upstream
    await chat_socket.send_json_to({"message": "fine", "settings": {"max_tokens": 1000}})
    assert (await reply_collect(chat_socket))[-1]["type"] == "done"  # and the socket stays usable


async def test_an_agents_per_model_settings_go_in_that_models_entry_and_are_recorded(chat_socket, standin):
    await Agent.objects.acreate(
        slug="split",
        name="Split",
        model_names=MODELS,
        settings={"temperature": 0.3},
        model_settings={MODELS[1]: {"reasoning_effort": "high", "max_tokens": 2000}},
    )
    await chat_socket.send_json_to(
        {"message": "go [[standin reply=a%20b%20c%20d handoff_after=2]]", "agent": "split"}
    )
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done", frames[-1]
    assert frames[-1]["served_models"] == MODELS  # the stand-in handed off to the entry's model

    body = standin.requests()[0]["body"]
    assert body["model"] == [
        MODELS[0],
        {"model": MODELS[1], "settings": {"reasoning_effort": "high", "max_tokens": 2000}},
    ]
    assert body["temperature"] == 0.3
    reply = await Message.objects.aget(pk=frames[0]["message_id"])
    assert reply.request_settings == {
        "temperature": 0.3,
        "model_settings": {MODELS[1]: {"reasoning_effort": "high", "max_tokens": 2000}},
    }


def test_who_answers_a_new_chat_is_read_in_one_query_as_before_agents(django_assert_num_queries):
    """Every new chat's socket asks it: the default agent costs no query beyond the default model's."""
    with django_assert_num_queries(1):
        assert new_chat_answerer() == (None, "openai/gpt-5.1")
    Agent.objects.create(slug="house", name="House", model_names=[MODELS[1]], is_default=True)
    with django_assert_num_queries(1):
        assert new_chat_answerer() == ("house", MODELS[1])
