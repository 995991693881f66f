"""Frame parsing and the history the upstream sees, without a socket."""

from __future__ import annotations

from dataclasses import replace

import pytest

from conversations import protocol
from conversations.chat.turns import upstream_messages_build
from conversations.exceptions import ChatError
from conversations.models import Message
from conversations.validators import mcp_target_error


def test_the_original_pages_frame_parses_with_model_and_servers():
    frame = protocol.parse_client_frame(
        '{"message": "hi", "model": "openai/gpt-5.1", "mcp_servers": ["a/b"]}'
    )
    assert frame == protocol.SendFrame(
        message="hi", options=protocol.TurnOptions(model="openai/gpt-5.1", mcp_servers=["a/b"])
    )


def test_left_out_model_and_servers_stay_unset_so_the_conversations_apply():
    assert protocol.parse_client_frame('{"message": "hi"}') == protocol.SendFrame(message="hi")


def test_a_stop_frame_parses():
    assert protocol.parse_client_frame('{"type": "stop"}') == protocol.StopFrame()


def test_an_oversized_frame_is_refused_before_parsing(settings):
    with pytest.raises(ChatError) as caught:
        protocol.parse_client_frame('{"message": "' + "x" * settings.CHAT_MAX_FRAME_BYTES + '"}')
    assert caught.value.code == "message_too_long"


@pytest.mark.parametrize(
    ("target", "ok"),
    [
        ("org/name", True),
        ("org/name@v2", True),
        ("https://mcp.example.com/path?x=1", True),
        ("http://mcp.example.com", False),
        ("https://a:b@mcp.example.com", False),
        ("https://", False),
        ("org/name/extra", False),
        ("", False),
        (5, False),
    ],
)
def test_mcp_targets_are_slugs_or_https_urls(target, ok):
    assert (mcp_target_error(target) is None) is ok


def message(role: str, content: str) -> Message:
    return Message(role=role, content=content)


def test_upstream_history_keeps_turns_in_order():
    built = upstream_messages_build([message("user", "a"), message("assistant", "b"), message("user", "c")])
    assert built == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]


def test_a_message_whose_reply_has_no_text_is_left_out_not_merged_with_the_next():
    built = upstream_messages_build([message("user", "a"), message("assistant", ""), message("user", "c")])
    assert built == [{"role": "user", "content": "c"}]
    built = upstream_messages_build(
        [message("user", "a"), message("assistant", "b"), message("user", "x"), message("assistant", "")]
        + [message("user", "c")]
    )
    assert built == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]


def test_a_partial_reply_stays_in_the_history():
    built = upstream_messages_build(
        [message("user", "a"), message("assistant", "half"), message("user", "c")]
    )
    assert [m["role"] for m in built] == ["user", "assistant", "user"]


def test_every_frame_that_starts_a_reply_carries_its_choices_as_one_value():
    upload = "0f8fad5b-d9cb-469f-a165-70867728950e"
    options = protocol.TurnOptions(model="openai/gpt-5.1", client_id="c1", agent="brief", settings={})
    edit = protocol.parse_client_frame(
        '{"type": "edit", "message_id": 3, "message": "x", "model": "openai/gpt-5.1", "client_id": "c1",'
        f' "agent": "brief", "settings": {{}}, "attachments": ["{upload}"]}}'
    )
    regenerate = protocol.parse_client_frame(
        '{"type": "regenerate", "message_id": 4, "model": "openai/gpt-5.1", "client_id": "c1",'
        f' "agent": "brief", "settings": {{}}, "attachments": ["{upload}"]}}'
    )

    with_files = replace(options, attachments=[upload])
    assert edit == protocol.EditFrame(message_id=3, message="x", options=with_files)
    assert regenerate == protocol.RegenerateFrame(message_id=4, options=options)  # it carries no files
