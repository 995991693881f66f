"""The upstream parser keeps a model's reasoning apart from its reply, in every shape gateways send it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from conversations.upstream.chat import (
    Finish,
    ReasoningDelta,
    TextDelta,
    _events_from_lines,
    _StreamState,
)
from conversations.upstream.reasoning import ThinkSplit


def line(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return b"data: " + orjson.dumps({"choices": [{"delta": delta, "finish_reason": finish}]})


def parsed(*reads: list[bytes]) -> tuple[str, str, list[type]]:
    """The reasoning and the text of a stream read in these batches of lines, and the events' kinds."""
    state, events = _StreamState(), []
    for lines in reads:
        events.extend(_events_from_lines(lines, state))
    events.extend(_events_from_lines([line({}, "stop"), b"data: [DONE]"], state))
    thought = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return thought, text, [type(e) for e in events if not isinstance(e, Finish)]


@pytest.mark.parametrize(
    "delta",
    [
        {"reasoning_content": "weighing it"},
        {"reasoning": "weighing it"},
        {"reasoning_details": [{"type": "reasoning.text", "text": "weighing", "index": 0}, {"text": " it"}]},
        # OpenRouter sends the same words in two fields: counted once
        {
            "reasoning": "weighing it",
            "reasoning_details": [{"type": "reasoning.text", "text": "weighing it"}],
        },
    ],
)
def test_each_gateway_shape_is_reasoning_not_text(delta):
    thought, text, kinds = parsed([line(delta), line({"content": "The answer."})])
    assert (thought, text) == ("weighing it", "The answer.")
    assert kinds == [ReasoningDelta, TextDelta]


def test_reasoning_and_text_in_one_read_keep_their_order():
    _, _, kinds = parsed(
        [
            line({"reasoning_content": "a"}),
            line({"reasoning_content": "b"}),
            line({"content": "x"}),
            line({"reasoning_content": "c"}),
            line({"content": "y"}),
        ]
    )
    assert kinds == [ReasoningDelta, TextDelta, ReasoningDelta, TextDelta]


def test_a_think_prefix_is_reasoning_and_the_text_after_it_the_reply():
    thought, text, _ = parsed([line({"content": "<think>step one</think>\n\nThe answer."})])
    assert (thought, text) == ("step one", "The answer.")


@pytest.mark.parametrize("cut", range(1, 30))
def test_a_think_prefix_cut_anywhere_across_chunks_splits_the_same(cut):
    whole = "  <think>step one</think>\n\nThe answer."
    one_chunk_each = [[line({"content": whole[:cut]})], [line({"content": whole[cut:]})]]
    assert parsed(*one_chunk_each)[:2] == ("step one", "The answer.")
    per_character = [[line({"content": char})] for char in whole]
    assert parsed(*per_character)[:2] == ("step one", "The answer.")


def test_text_without_a_think_prefix_is_all_reply_even_when_it_mentions_the_tag():
    thought, text, _ = parsed(
        [line({"content": "<"})], [line({"content": "b>bold</b> then <think>x</think>"})]
    )
    assert (thought, text) == ("", "<b>bold</b> then <think>x</think>")


def test_a_reply_ending_inside_its_think_tag_keeps_the_reasoning():
    assert parsed([line({"content": "<think>unfinished </thi"})])[:2] == ("unfinished </thi", "")
    assert parsed([line({"content": "<thi"})])[:2] == ("", "<thi")


def test_reasoning_past_the_cap_is_dropped(settings):
    settings.CHAT_MAX_REASONING_CHARS = 10
    thought, text, _ = parsed([line({"reasoning": "0123456"})], [line({"reasoning": "789abcdef"})])
    assert thought == "0123456789"
    thought, text, _ = parsed([line({"content": "<think>" + "x" * 50 + "</think>ok"})])
    assert (thought, text) == ("x" * 10, "ok")


def test_reasoning_never_moves_the_texts_offsets():
    state = _StreamState()
    _events_from_lines(
        [line({"reasoning": "long thoughts"}), line({"content": "<think>more</think>abc"})], state
    )
    assert state.chars == 3


def test_the_splitter_holds_back_no_more_than_a_tag():
    split = ThinkSplit()
    assert split.feed("<think>abcdef</th") == ("abcdef", "", False)
    assert split.held == "</th"
    assert split.feed("ink> answer") == ("", "answer", True)
