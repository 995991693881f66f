"""What a reply reports besides its text, end to end through the stand-in: reasoning and cached tokens,
and a refusal."""

from __future__ import annotations

import pytest

from conversations.models import Message

from .chat_sockets import chunks_text, reply_collect, socket_open

pytestmark = pytest.mark.django_db(transaction=True)


async def test_reasoning_and_cached_tokens_reach_the_done_frame_the_row_and_history(chat_socket, standin):
    await chat_socket.send_json_to({"message": "think [[standin reasoning_tokens=7 cached_tokens=5]]"})
    frames = await reply_collect(chat_socket)

    usage = frames[-1]["usage"]
    assert (usage["reasoning_tokens"], usage["cached_tokens"]) == (7, 5)
    reply = await Message.objects.aget(pk=frames[0]["message_id"])
    assert (reply.reasoning_tokens, reply.cached_tokens) == (7, 5)
    again = await socket_open("/ws/chat/t1/")
    assert again.history["messages"][-1]["usage"] == usage
    await again.disconnect()


async def test_a_reply_without_those_details_reports_none_of_them(chat_socket, standin):
    await chat_socket.send_json_to({"message": "plain"})
    usage = (await reply_collect(chat_socket))[-1]["usage"]
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}


async def test_a_refusal_streams_as_the_replys_text_and_ends_as_a_refusal(chat_socket, standin):
    await chat_socket.send_json_to(
        {"message": "no [[standin refusal=1 reply=I%20cannot%20help%20with%20that.]]"}
    )
    frames = await reply_collect(chat_socket)

    chunks = [frame for frame in frames if frame["type"] == "chunk"]
    assert chunks_text(frames) == "I cannot help with that."
    offsets = [frame["offset"] for frame in chunks]
    assert offsets == [sum(len(f["content"]) for f in chunks[:i]) for i in range(len(chunks))]
    assert frames[-1]["finish_reason"] == "refusal"
    reply = await Message.objects.aget(pk=frames[0]["message_id"])
    assert (reply.status, reply.finish_reason, reply.content) == (
        "complete",
        "refusal",
        "I cannot help with that.",
    )


def test_an_agent_updated_event_marks_a_handoff_even_when_chunks_do_not_name_their_model():
    import orjson

    from conversations.upstream.chat import TextDelta, _events_from_lines, _StreamState

    def line(chunk: dict) -> bytes:
        return b"data: " + orjson.dumps(chunk)

    state = _StreamState()
    events = _events_from_lines(
        [
            line({"model": "a/first", "choices": [{"delta": {"content": "one two "}}]}),
            line(
                {
                    "choices": [],
                    "x_dedalus_event": {"type": "agent_updated", "agent": "b", "model": "b/second"},
                }
            ),
            line({"choices": [{"delta": {"content": "three"}}]}),
        ],
        state,
    )
    assert [event.text for event in events if isinstance(event, TextDelta)] == ["one two three"]
    assert state.served_models == ["a/first", "b/second"]
    assert state.handoff_offsets == [len("one two ")]
