"""A user's own agent answering over the real socket, through real HTTP to the stand-in: its instructions,
models, settings and MCP servers go upstream; nobody else can name it; with CHAT_USER_AGENTS off, nobody."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from chatproject.asgi import application
from conversations.agents import own
from conversations.models import Agent, Conversation, Message

from .chat_sockets import ORIGIN, reply_collect

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = ["openai/gpt-5.1", "anthropic/claude-opus-4-5-20251101"]
COACH = {
    "name": "Essay coach",
    "instructions": "You coach essay writing. Ask one question at a time.",
    "models": MODELS,
    "settings": {"temperature": 0.4, "max_tokens": 700, "reasoning_effort": "low"},
    "mcp_servers": ["acme/search@1.2.0"],
}


@sync_to_async
def user_browser(username: str) -> tuple[int, Client]:
    user = get_user_model().objects.create_user(username, password="pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return user.pk, client


async def socket_of(client: Client, path: str) -> WebsocketCommunicator:
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, (b"cookie", cookie.encode())])
    connected, _ = await communicator.connect()
    assert connected
    communicator.history = await communicator.receive_json_from(timeout=5)  # type: ignore[attr-defined]
    return communicator


async def test_a_users_own_agent_answers_with_its_instructions_models_settings_and_servers(
    standin, replies_settle
):
    alice_id, alice = await user_browser("alice")
    agent = await sync_to_async(own.own_agent_create)(alice_id, COACH)
    tab = await socket_of(alice, "/ws/chat/essay/")

    await tab.send_json_to({"message": "read my draft", "agent": agent["slug"]})
    frames = await reply_collect(tab)
    assert frames[-1]["type"] == "done", frames[-1]

    (request,) = standin.requests()
    body = request["body"]
    assert body["messages"] == [
        {"role": "system", "content": COACH["instructions"]},
        {"role": "user", "content": "read my draft"},
    ]
    assert body["model"] == MODELS
    assert (body["temperature"], body["max_tokens"], body["reasoning_effort"]) == (0.4, 700, "low")
    assert body["mcp_servers"] == [{"slug": "acme/search", "version": "1.2.0"}]
    reply = await Message.objects.aget(pk=frames[0]["message_id"])
    assert (reply.agent_slug, reply.request_models) == (agent["slug"], MODELS)

    # The conversation keeps it: the next message, with no agent named, goes to it again, and history
    # names it so the page's picker shows it.
    await tab.send_json_to({"message": "and now?"})
    assert (await reply_collect(tab))[-1]["type"] == "done"
    assert standin.requests()[-1]["body"]["messages"][0]["content"] == COACH["instructions"]
    await tab.disconnect()
    again = await socket_of(alice, "/ws/chat/essay/")
    assert again.history["conversation"]["agent"] == agent["slug"]
    await again.disconnect()


async def test_another_user_cannot_address_someone_elses_agent_and_nothing_is_stored(standin, replies_settle):
    alice_id, _ = await user_browser("alice")
    _, bob = await user_browser("bob")
    agent = await sync_to_async(own.own_agent_create)(alice_id, COACH)
    tab = await socket_of(bob, "/ws/chat/borrowed/")

    await tab.send_json_to({"message": "let me use it", "agent": agent["slug"]})
    (error,) = await reply_collect(tab)
    assert (error["type"], error["code"]) == ("error", "unknown_agent")
    assert COACH["name"] not in error["message"]
    assert standin.requests() == []
    assert not await Conversation.objects.aexists()
    await tab.send_json_to({"message": "a plain model then"})
    assert (await reply_collect(tab))[-1]["type"] == "done"  # the socket stays usable
    assert standin.requests()[0]["body"]["messages"] == [{"role": "user", "content": "a plain model then"}]
    await tab.disconnect()


async def test_with_user_agents_off_an_own_agent_answers_nobody(standin, replies_settle, settings):
    alice_id, alice = await user_browser("alice")
    agent = await sync_to_async(own.own_agent_create)(alice_id, COACH)
    tab = await socket_of(alice, "/ws/chat/off/")
    await tab.send_json_to({"message": "first", "agent": agent["slug"]})
    assert (await reply_collect(tab))[-1]["type"] == "done"

    settings.CHAT_USER_AGENTS = False
    for frame in ({"message": "named", "agent": agent["slug"]}, {"message": "the conversation's"}):
        await tab.send_json_to(frame)
        (error,) = await reply_collect(tab)
        assert (error["type"], error["code"]) == ("error", "unknown_agent")
    assert len(standin.requests()) == 1
    await tab.disconnect()


async def test_a_deleted_agents_conversation_goes_on_with_its_model(standin, replies_settle):
    alice_id, alice = await user_browser("alice")
    agent = await sync_to_async(own.own_agent_create)(alice_id, COACH)
    tab = await socket_of(alice, "/ws/chat/after/")
    await tab.send_json_to({"message": "first", "agent": agent["slug"]})
    assert (await reply_collect(tab))[-1]["type"] == "done"

    assert await sync_to_async(own.own_agent_delete)(alice_id, agent["id"])
    await tab.send_json_to({"message": "second"})
    assert (await reply_collect(tab))[-1]["type"] == "done"
    second = standin.requests()[-1]["body"]
    assert second["model"] == MODELS[0]  # the model it last answered with, as a plain model
    assert second["messages"][0]["role"] == "user"  # no instructions any more
    first = await Message.objects.filter(role="assistant").afirst()
    assert first.agent_slug == agent["slug"]  # the record of who wrote it stays
    assert not await Agent.owned.aexists()
    await tab.disconnect()
