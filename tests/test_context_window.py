"""A conversation longer than its model's context window still gets a reply: the request keeps the
instructions and the newest turns that fit, and says how many older ones were left out."""

from __future__ import annotations

import pytest

from conversations.context import context_fit, tokens_estimate
from conversations.models import Agent, ChatModel, Message

from .chat_sockets import reply_collect, socket_open

LONG = "word " * 60  # 300 bytes: about 104 tokens by the estimate


def turns(count: int) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{i} {LONG}"} for i in range(count)]


def test_everything_is_kept_without_a_limit_or_when_it_fits():
    assert context_fit(turns(5), instructions="", input_limit=None) == (turns(5), 0)
    assert context_fit(turns(5), instructions="", input_limit=100_000) == (turns(5), 0)


def test_the_newest_turns_that_fit_are_kept_starting_with_a_user_message():
    kept, dropped = context_fit(turns(7), instructions="", input_limit=350)
    assert kept == turns(7)[4:]  # three of ~108 tokens fit; the fourth would not
    assert dropped == 4
    kept, dropped = context_fit(turns(7), instructions="", input_limit=240)
    assert kept == turns(7)[6:]  # two would fit, but the older is a reply without its question
    assert dropped == 6


def test_the_instructions_and_the_reserve_take_their_share_and_the_newest_message_always_goes():
    instructions = "be brief " * 30
    kept, _ = context_fit(turns(7), instructions=instructions, input_limit=350)
    assert kept == turns(7)[6:]
    kept, dropped = context_fit(turns(7), instructions="", input_limit=350, reserve=300)
    assert (kept, dropped) == (turns(7)[6:], 6)
    assert context_fit(turns(3), instructions="", input_limit=1) == (turns(3)[2:], 2)


def test_tool_results_are_never_kept_without_the_call_they_answer():
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": LONG}}
    messages = [
        *turns(3),
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": LONG, "tool_call_id": "c1"},
    ]
    kept, dropped = context_fit(messages, instructions="", input_limit=240)
    assert (kept, dropped) == (messages[2:], 2)  # over the window rather than a result without its call
    assert context_fit(messages, instructions="", input_limit=100_000) == (messages, 0)
    # A call's arguments count: ~423 tokens of text, and ~128 more of the call's JSON, over 450.
    answered = [messages[0], *messages[3:], *turns(5)[3:]]
    assert context_fit(answered, instructions="", input_limit=450)[1] == 4


def test_the_estimate_errs_high():
    assert tokens_estimate("hello world") >= 2 + 4
    assert tokens_estimate("日本語のテキスト") >= 8  # a token per character at most, for these scripts


@pytest.mark.django_db(transaction=True)
async def test_a_long_conversation_still_gets_a_reply_and_says_what_was_left_out(chat_socket, standin):
    await ChatModel.objects.filter(name="openai/gpt-5.1").aupdate(input_token_limit=400)
    await Agent.objects.acreate(
        slug="brief", name="Brief", instructions="Be brief.", model_names=["openai/gpt-5.1"]
    )
    for i in range(3):
        # Echoed (echo=1): each reply is as long as its question, as the limit below assumes.
        await chat_socket.send_json_to(
            {"message": f"question {i} {LONG} [[standin echo=1]]", "agent": "brief"}
        )
        frames = await reply_collect(chat_socket)
        assert frames[-1]["type"] == "done"

    start = frames[0]
    reply = await Message.objects.aget(pk=start["message_id"])
    assert start["context_dropped"] == reply.context_dropped > 0
    sent = standin.requests()[-1]["body"]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}  # the instructions always go
    assert sent[1]["role"] == "user"
    assert sent[-1] == {"role": "user", "content": f"question 2 {LONG} [[standin echo=1]]"}
    assert len(sent) == 1 + 5 - reply.context_dropped  # the branch had five messages
    again = await socket_open("/ws/chat/t1/")
    assert again.history["messages"][-1]["context_dropped"] == reply.context_dropped
    await again.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_message_whose_reply_failed_before_any_text_is_not_sent_with_later_ones(
    chat_socket, standin, settings
):
    """The failed message stays in the thread, but the next request leaves it out instead of gluing it
    to the next message: what made the upstream fail is not sent again with every later message."""
    settings.CHAT_UPSTREAM_MAX_RETRIES = 0
    await chat_socket.send_json_to({"message": "this one breaks it [[standin status=500]]"})
    failed = await reply_collect(chat_socket)
    assert failed[-1]["type"] == "error", failed[-1]

    await chat_socket.send_json_to({"message": "a question after it"})
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done", frames[-1]
    assert "".join(frame["content"] for frame in frames if frame["type"] == "chunk")
    sent = [message for message in standin.requests()[-1]["body"]["messages"] if message["role"] != "system"]
    assert sent == [{"role": "user", "content": "a question after it"}]

    again = await socket_open("/ws/chat/t1/")
    shown = [(message["role"], message["content"]) for message in again.history["messages"]]
    assert shown[:2] == [("user", "this one breaks it [[standin status=500]]"), ("assistant", "")]
    await again.disconnect()
