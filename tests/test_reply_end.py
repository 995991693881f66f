"""A reply's end as one value: the row it stores and the frame it sends, without a socket."""

from __future__ import annotations

from conversations import protocol
from conversations.chat.reply_end import ReplyEnd
from conversations.models import Message

USAGE = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_a_finished_replys_end_frame_is_the_done_frame_byte_for_byte():
    end = ReplyEnd(
        status=Message.Status.COMPLETE,
        finish_reason="stop",
        usage=USAGE,
        served_models=("openai/gpt-5.1", "anthropic/claude"),
        handoff_offsets=(7,),
    )
    done = protocol.done_frame(
        message_id=9,
        usage=USAGE,
        finish_reason="stop",
        served_models=["openai/gpt-5.1", "anthropic/claude"],
        handoff_offsets=[7],
    )
    assert protocol.dumps(end.frame(9)) == protocol.dumps(done)


def test_a_failed_replys_end_frame_is_its_error():
    end = ReplyEnd(status="error", finish_reason="error", error_code="upstream_timeout", error="Slow.")
    assert end.frame(9) == protocol.error_frame("upstream_timeout", "Slow.", message_id=9)


def test_the_servers_own_failure_keeps_the_models_and_drops_the_usage():
    end = ReplyEnd(status=Message.Status.COMPLETE, usage=USAGE, served_models=("openai/gpt-5.1",))
    failed = end.failed_internally()
    assert (failed.status, failed.error_code, failed.usage, failed.served_models) == (
        "error",
        "internal_error",
        None,
        ("openai/gpt-5.1",),
    )


def test_an_estimated_usage_is_stored_and_sent_but_not_reported_as_the_upstreams():
    end = ReplyEnd(status="interrupted", finish_reason="stopped", usage=USAGE, usage_estimated=True)
    assert end.frame(9)["usage"] == USAGE
    assert end.usage_reported == {}


def test_a_stored_row_reads_as_the_end_it_stored():
    failed = Message(status=Message.Status.ERROR, error="It broke.", served_models=["openai/gpt-5.1"])
    lapsed = Message(status=Message.Status.INTERRUPTED, total_tokens=5, prompt_tokens=2, completion_tokens=3)

    gone = protocol.error_frame("upstream_error", "It broke.", message_id=4)
    assert ReplyEnd.stored(failed).frame(4) == gone
    assert ReplyEnd.stored(lapsed).frame(4) == protocol.done_frame(
        message_id=4, usage=USAGE, finish_reason="interrupted"
    )


def test_tool_calls_end_a_reply_in_its_frame_and_its_row_and_never_a_failure():
    calls = ({"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},)
    end = ReplyEnd(status=Message.Status.COMPLETE, finish_reason="tool_calls", tool_calls=calls)
    assert end.frame(9)["tool_calls"] == list(calls)
    assert "tool_calls" not in ReplyEnd(status=Message.Status.COMPLETE).frame(9)
    row = Message(status=Message.Status.COMPLETE, finish_reason="tool_calls", tool_calls=list(calls))
    assert ReplyEnd.stored(row).frame(9) == end.frame(9)
    assert end.failed_internally().tool_calls == ()
