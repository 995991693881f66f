"""A thinking model's reasoning, end to end through the stand-in: streamed in its own frames before the
text, stored apart with how long it took, resumed exactly like text, and never sent back to the model."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from conversations.models import Message

from .chat_sockets import chunks_text, reply_collect, socket_open

pytestmark = pytest.mark.django_db(transaction=True)

SHAPES = ("reasoning_content", "reasoning", "reasoning_details", "think")
THOUGHT = "Weigh%20both%20sides%20first.%20Then%20pick%20the%20plainer%20one."


def reasoning_of(frames: list[dict[str, Any]]) -> str:
    """The reasoning the frames carry, checking each starts where the one before ended."""
    text = ""
    for frame in frames:
        if frame["type"] == "reasoning":
            assert frame["offset"] == len(text)
            text += frame["content"]
    return text


@pytest.mark.parametrize("shape", SHAPES)
async def test_reasoning_streams_in_its_own_frames_before_the_text_and_is_stored_with_its_duration(
    chat_socket, standin, shape
):
    await chat_socket.send_json_to(
        {"message": f"which? [[standin reasoning={shape} reasoning_ms=400 reasoning_text={THOUGHT}]]"}
    )
    frames = await reply_collect(chat_socket)
    kinds = [f["type"] for f in frames]
    assert (kinds[0], kinds[-1]) == ("start", "done")
    last_reasoning = max(i for i, k in enumerate(kinds) if k == "reasoning")
    assert kinds.index("chunk") > last_reasoning
    thought, text = reasoning_of(frames), chunks_text(frames)
    assert thought == "Weigh both sides first. Then pick the plainer one."
    assert text
    assert "Weigh" not in text
    assert "think>" not in text

    done = frames[-1]
    assert done["reasoning_ms"] >= 350  # the stand-in thought for 400 ms
    reply = await Message.objects.aget(pk=done["message_id"])
    assert (reply.content, reply.reasoning, reply.reasoning_ms) == (text, thought, done["reasoning_ms"])

    history = (await socket_open("/ws/chat/t1/")).history
    shown = history["messages"][-1]
    assert (shown["reasoning"], shown["reasoning_ms"], shown["content"]) == (
        thought,
        reply.reasoning_ms,
        text,
    )


async def test_reasoning_is_never_sent_back_as_context(chat_socket, standin):
    await chat_socket.send_json_to(
        {"message": f"first [[standin reasoning=think reasoning_ms=50 reasoning_text={THOUGHT}]]"}
    )
    first = await reply_collect(chat_socket)
    await chat_socket.send_json_to({"message": "and then?"})
    await reply_collect(chat_socket)

    sent = standin.requests()[-1]["body"]
    assert sent["messages"][-2] == {"role": "assistant", "content": chunks_text(first)}
    assert "pick the plainer one" not in orjson.dumps(sent).decode()  # the directive has it as %20s


async def test_a_reply_without_reasoning_has_no_reasoning_frames_nor_duration(chat_socket, standin):
    await chat_socket.send_json_to({"message": "plain"})
    frames = await reply_collect(chat_socket)
    assert "reasoning" not in {f["type"] for f in frames}
    assert "reasoning_ms" not in frames[-1]
    reply = await Message.objects.aget(pk=frames[-1]["message_id"])
    assert (reply.reasoning, reply.reasoning_ms) == ("", None)


async def test_reasoning_tokens_without_reasoning_text_still_say_how_long_the_model_thought(
    chat_socket, standin
):
    await chat_socket.send_json_to({"message": "hidden [[standin reasoning_tokens=40 first_delay_ms=300]]"})
    frames = await reply_collect(chat_socket)
    assert "reasoning" not in {f["type"] for f in frames}
    assert frames[-1]["reasoning_ms"] >= 250
    reply = await Message.objects.aget(pk=frames[-1]["message_id"])
    assert (reply.reasoning, reply.reasoning_ms) == ("", frames[-1]["reasoning_ms"])


async def test_a_reply_that_only_thought_keeps_its_reasoning_and_duration(chat_socket, standin):
    await chat_socket.send_json_to(
        {"message": f"cut [[standin reasoning=reasoning tokens=0 reasoning_ms=300 reasoning_text={THOUGHT}]]"}
    )
    frames = await reply_collect(chat_socket)
    assert chunks_text(frames) == ""
    assert reasoning_of(frames).startswith("Weigh")
    assert frames[-1]["reasoning_ms"] >= 250
    reply = await Message.objects.aget(pk=frames[-1]["message_id"])
    assert (reply.content, reply.reasoning) == ("", reasoning_of(frames))


async def test_joining_mid_reasoning_gets_the_reasoning_so_far_then_exactly_the_rest(standin, replies_settle):
    words = "%20".join(f"step{i}" for i in range(60))
    tab1 = await socket_open("/ws/chat/thinking/")
    await tab1.send_json_to(
        {"message": f"deep [[standin reasoning=reasoning_content reasoning_ms=1500 reasoning_text={words}]]"}
    )
    seen = [await tab1.receive_json_from()]
    while sum(f["type"] == "reasoning" for f in seen) < 5:
        seen.append(await tab1.receive_json_from())

    tab2 = await socket_open("/ws/chat/thinking/")
    streaming = tab2.history["streaming"]
    (live,) = [m for m in tab2.history["messages"] if m["id"] == streaming["message_id"]]
    so_far = live["reasoning"]
    assert so_far
    assert streaming["reasoning_offset"] == len(so_far)
    rest = await reply_collect(tab2)
    offset = len(so_far)
    for frame in rest:
        if frame["type"] == "reasoning":
            assert frame["offset"] == offset
            offset += len(frame["content"])
    reply = await Message.objects.aget(pk=streaming["message_id"])
    assert so_far + "".join(f["content"] for f in rest if f["type"] == "reasoning") == reply.reasoning
    assert reply.reasoning == " ".join(f"step{i}" for i in range(60))
    assert reasoning_of([*seen, *await reply_collect(tab1)]) == reply.reasoning

    # A resync of the reasoning from an offset gives exactly the rest of it, and no end frame.
    await tab2.send_json_to({"type": "resync", "message_id": reply.pk, "offset": 7, "part": "reasoning"})
    await tab2.send_json_to({"type": "history", "before": reply.pk})  # a frame to stop reading at
    resent = []
    while (frame := await tab2.receive_json_from())["type"] != "history_page":
        resent.append(frame)
    assert {f["type"] for f in resent} == {"reasoning"}
    assert resent[0]["offset"] == 7
    assert "".join(f["content"] for f in resent) == reply.reasoning[7:]
    await tab1.disconnect()
    await tab2.disconnect()


async def test_a_resync_of_another_part_is_refused(chat_socket):
    await chat_socket.send_json_to({"type": "resync", "message_id": 1, "offset": 0, "part": "tools"})
    assert (await chat_socket.receive_json_from())["code"] == "invalid_message"


async def test_a_thinking_budget_goes_as_the_apis_thinking_object_and_stays_with_the_conversation(
    chat_socket, standin
):
    frame = {"message": "think hard", "settings": {"thinking_budget": 2048, "reasoning_effort": "high"}}
    await chat_socket.send_json_to(frame)
    assert (await reply_collect(chat_socket))[-1]["type"] == "done"
    body = standin.requests()[-1]["body"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["reasoning_effort"] == "high"
    assert "thinking_budget" not in body

    await chat_socket.send_json_to({"message": "again"})  # the conversation keeps it
    await reply_collect(chat_socket)
    assert standin.requests()[-1]["body"]["thinking"] == {"type": "enabled", "budget_tokens": 2048}


@pytest.mark.parametrize("budget", [10, 2.5, "2048"])
async def test_a_thinking_budget_that_is_no_whole_number_of_at_least_1024_is_refused(
    chat_socket, standin, budget
):
    await chat_socket.send_json_to({"message": "x", "settings": {"thinking_budget": budget}})
    refusal = await chat_socket.receive_json_from()
    assert refusal["code"] == "invalid_settings"
    assert "thinking_budget" in refusal["message"]
    assert standin.requests() == []


def test_a_message_too_long_for_a_frame_has_its_reasoning_cut_to_what_its_text_leaves():
    from conversations.chat.selectors import message_bounded

    message = {"content": "a" * 6, "reasoning": "r" * 10}
    assert message_bounded(message, limit=16) is message
    cut = message_bounded(message, limit=10)
    assert (cut["content"], cut["reasoning"], cut["reasoning_truncated"]) == ("a" * 6, "rrrr", True)
    assert "truncated" not in cut
    cut = message_bounded({"content": "a" * 12, "reasoning": "r"}, limit=10)
    assert (cut["content"], cut["truncated"], cut["length"]) == ("a" * 10, True, 12)
    assert (cut["reasoning"], cut["reasoning_truncated"]) == ("", True)
