"""Bad frames, refused messages and upstream failures: each gets a coded error and the socket lives on."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from chatproject.asgi import application
from conversations.models import Conversation, Message

from .chat_sockets import ORIGIN, chunks_text, reply_collect, socket_open

pytestmark = pytest.mark.django_db(transaction=True)


async def assert_still_chats(communicator: WebsocketCommunicator, text: str = "still there?") -> None:
    """A valid message after the bad one round-trips to `done`."""
    await communicator.send_json_to({"message": text})
    frames = await reply_collect(communicator)
    assert frames[-1]["type"] == "done"
    assert text in chunks_text(frames)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('"a string"', "invalid_json"),
        ("42", "invalid_json"),
        ("{}", "invalid_message"),
        ('{"message": ""}', "invalid_message"),
        ('{"message": "   "}', "invalid_message"),
        ('{"message": 5}', "invalid_message"),
        ('{"type": "dance"}', "invalid_message"),
        ('{"message": "hi", "model": 7}', "unknown_model"),
        ('{"message": "hi", "mcp_servers": "org/name"}', "invalid_mcp_server"),
    ],
)
async def test_a_bad_frame_gets_a_coded_error_and_the_socket_still_works(chat_socket, raw, code):
    await chat_socket.send_to(text_data=raw)
    frame = await chat_socket.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", code)
    assert frame["message"]
    assert await Message.objects.acount() == 0
    await assert_still_chats(chat_socket)


async def test_a_binary_frame_is_refused_with_invalid_json(chat_socket):
    await chat_socket.send_to(bytes_data=b"\xff\xfe binary")
    frame = await chat_socket.receive_json_from()
    assert frame["code"] == "invalid_json"
    await assert_still_chats(chat_socket)


async def test_unknown_model_is_refused_and_nothing_is_stored(chat_socket, standin):
    await chat_socket.send_json_to({"message": "hi", "model": "nope/none"})
    frame = await chat_socket.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "unknown_model")
    assert await Message.objects.acount() == 0
    assert not await Conversation.objects.aexists()
    assert standin.requests() == []
    assert await chat_socket.receive_nothing()


async def test_a_disabled_model_is_refused(chat_socket):
    from conversations.models import ChatModel

    await ChatModel.objects.filter(name="google/gemini-3-pro-preview").aupdate(enabled=False)
    await chat_socket.send_json_to({"message": "hi", "model": "google/gemini-3-pro-preview"})
    assert (await chat_socket.receive_json_from())["code"] == "unknown_model"


@pytest.mark.parametrize(
    "server",
    [
        "http://mcp.example.com",
        "https://user:pw@mcp.example.com/",
        "not a slug",
        "org/",
        "ftp://x/y",
        " org/name",
    ],
)
async def test_a_malformed_mcp_server_is_refused(chat_socket, standin, server):
    await chat_socket.send_json_to({"message": "hi", "mcp_servers": ["org/fine", server]})
    frame = await chat_socket.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "invalid_mcp_server")
    assert await Message.objects.acount() == 0
    assert standin.requests() == []


async def test_too_long_a_message_is_refused(chat_socket, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    await chat_socket.send_json_to({"message": "x" * 11})
    assert (await chat_socket.receive_json_from())["code"] == "message_too_long"
    assert await Message.objects.acount() == 0


async def test_without_an_api_key_the_client_gets_not_configured(chat_socket, standin, settings):
    settings.DEDALUS_API_KEY = ""
    await chat_socket.send_json_to({"message": "hi"})
    frame = await chat_socket.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "not_configured")
    assert "DEDALUS_API_KEY" in frame["message"]
    assert await Message.objects.acount() == 0
    assert standin.requests() == []


async def test_upstream_500_keeps_the_user_message_and_the_next_turn_works(chat_socket, standin, settings):
    settings.CHAT_UPSTREAM_MAX_RETRIES = 0
    standin.script({"status": 500})
    await chat_socket.send_json_to({"message": "first try"})
    start, error = await reply_collect(chat_socket)
    assert start["type"] == "start"
    assert (error["type"], error["code"], error["message_id"]) == (
        "error",
        "upstream_error",
        start["message_id"],
    )
    assert "500" in error["message"]

    reply = await Message.objects.aget(pk=start["message_id"])
    assert (reply.status, reply.error_code, reply.content) == ("error", "upstream_error", "")
    assert await Message.objects.filter(role="user", content="first try").aexists()

    await chat_socket.send_json_to({"message": "second try"})
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done"
    # The failed turn's message stays in the thread but is not sent with the next one.
    assert standin.requests()[-1]["body"]["messages"] == [{"role": "user", "content": "second try"}]


async def test_a_retryable_failure_before_the_first_token_is_retried(chat_socket, standin, settings):
    settings.CHAT_UPSTREAM_MAX_RETRIES = 1
    standin.script({"status": 503})
    await chat_socket.send_json_to({"message": "flaky"})
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done"
    assert [r["outcome"] for r in standin.requests()] == ["error_status", "completed"]


async def test_a_stream_dropped_mid_reply_keeps_the_partial_text(chat_socket, standin):
    await chat_socket.send_json_to({"message": "drop [[standin tokens=20 drop_after=5]]"})
    frames = await reply_collect(chat_socket)
    error = frames[-1]
    assert (error["type"], error["code"]) == ("error", "upstream_error")
    partial = chunks_text(frames)
    assert partial
    reply = await Message.objects.aget(pk=frames[0]["message_id"])
    assert (reply.status, reply.content) == ("error", partial)
    await assert_still_chats(chat_socket)


async def test_a_stall_after_the_first_token_times_out_quickly(chat_socket, standin, settings):
    settings.CHAT_UPSTREAM_IDLE_TIMEOUT = 0.5
    await chat_socket.send_json_to({"message": "stall [[standin tokens=20 stall_after=3]]"})
    frames = await reply_collect(chat_socket)
    error = frames[-1]
    assert (error["type"], error["code"]) == ("error", "upstream_timeout")
    assert "0.5 s" in error["message"]
    reply = await Message.objects.aget(pk=frames[0]["message_id"])
    assert reply.status == "error"
    assert reply.content == chunks_text(frames) != ""
    await assert_still_chats(chat_socket)


async def test_a_stall_before_the_first_token_times_out(chat_socket, standin, settings):
    settings.CHAT_UPSTREAM_FIRST_TOKEN_TIMEOUT = 0.5
    settings.CHAT_UPSTREAM_MAX_RETRIES = 0
    await chat_socket.send_json_to({"message": "slow [[standin stall_before_headers=5]]"})
    frames = await reply_collect(chat_socket)
    assert frames[-1]["code"] == "upstream_timeout"
    assert "did not start replying" in frames[-1]["message"]


async def test_stop_interrupts_the_reply_and_keeps_its_partial_text(chat_socket, standin):
    await chat_socket.send_json_to({"message": "long [[standin tokens=200 delay_ms=20]]"})
    start = await chat_socket.receive_json_from()
    first_chunk = await chat_socket.receive_json_from()
    assert first_chunk["type"] == "chunk"
    await chat_socket.send_json_to({"type": "stop"})
    frames = [start, first_chunk, *await reply_collect(chat_socket)]
    done = frames[-1]
    assert (done["type"], done["finish_reason"], done["message_id"]) == (
        "done",
        "stopped",
        start["message_id"],
    )
    reply = await Message.objects.aget(pk=start["message_id"])
    assert (reply.status, reply.content) == ("interrupted", chunks_text(frames))
    assert 0 < reply.content.count(" ") < 200
    (request,) = standin.requests()
    assert request["outcome"] == "client_disconnected"
    await assert_still_chats(chat_socket)


async def test_stop_with_nothing_streaming_is_ignored(chat_socket):
    await chat_socket.send_json_to({"type": "stop"})
    assert await chat_socket.receive_nothing()


async def test_a_second_message_while_one_streams_is_busy(chat_socket, standin):
    await chat_socket.send_json_to({"message": "long [[standin tokens=40 delay_ms=10]]"})
    assert (await chat_socket.receive_json_from())["type"] == "start"
    await chat_socket.send_json_to({"message": "me too"})
    frames = await reply_collect(chat_socket)
    busy = [f for f in frames if f["type"] == "error"]
    assert [f["code"] for f in busy] == ["busy"]
    assert "message_id" not in busy[0]
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done"
    assert await Message.objects.filter(content="me too").acount() == 0
    assert len(standin.requests()) == 1


async def test_two_tabs_on_one_conversation_both_see_the_reply(standin, replies_settle):
    tab1 = await socket_open("/ws/chat/shared/")
    tab2 = await socket_open("/ws/chat/shared/")
    await tab1.send_json_to({"message": "for both"})
    frames1, frames2 = await reply_collect(tab1), await reply_collect(tab2)
    assert frames1 == frames2
    assert frames2[0]["user_message"]["content"] == "for both"
    await tab1.disconnect()
    await tab2.disconnect()


async def test_an_invalid_session_id_gets_an_error_and_a_close():
    communicator = WebsocketCommunicator(application, "/ws/chat/bad$id/", headers=[ORIGIN])
    connected, _ = await communicator.connect()
    assert connected
    frame = await communicator.receive_json_from()
    assert frame["code"] == "invalid_session_id"
    assert (await communicator.receive_output())["code"] == 4400


async def test_a_foreign_origin_is_refused():
    communicator = WebsocketCommunicator(
        application, "/ws/chat/t1/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected
