"""What one client can make the server do is bounded: frames out fit a WebSocket message whatever the
conversation holds, frames in are rate-limited per socket, and tokens spent count against the quota even
when a reply is stopped before its end, or is still streaming."""

from __future__ import annotations

import orjson
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore

from chatproject.asgi import application
from conversations.models import Conversation, Message

from .chat_sockets import ORIGIN, browser_owner_key, chunks_text, reply_collect, socket_open
from .redis_keys import limits_forget

pytestmark = pytest.mark.django_db(transaction=True)


def big_conversation_store(session_id: str, *, messages: int, chars: int) -> Conversation:
    """A conversation of alternating turns, each `chars` characters of a 3-byte script."""
    conversation = Conversation.objects.create(owner_key=browser_owner_key(), session_id=session_id)
    parent = None
    for n in range(messages):
        parent = Message.objects.create(
            conversation=conversation,
            parent=parent,
            role="user" if n % 2 == 0 else "assistant",
            content=f"{n}:" + "語" * chars,
        )
    conversation.current_message = parent
    conversation.save()
    return conversation


async def test_a_history_larger_than_a_websocket_message_is_paged_by_size(standin, replies_settle, settings):
    settings.CHAT_MAX_SERVER_FRAME_BYTES = 400_000
    await sync_to_async(big_conversation_store)("heavy", messages=18, chars=20_000)  # ~1 MiB of text
    socket = await socket_open("/ws/chat/heavy/")
    raw = orjson.dumps(socket.history)
    assert len(raw) <= 400_000
    assert socket.history["has_more"] is True
    shown = socket.history["messages"]
    assert shown[-1]["content"].startswith("17:")  # the newest that fit
    assert 1 < len(shown) < 18
    page = await _history_page(socket, before=shown[0]["id"])
    assert page["messages"]
    assert len(orjson.dumps(page)) <= 400_000
    await socket.disconnect()


async def _history_page(socket: WebsocketCommunicator, *, before: int) -> dict:
    await socket.send_json_to({"type": "history", "before": before})
    page = await socket.receive_json_from(timeout=5)
    assert page["type"] == "history_page"
    return page


async def test_one_message_too_long_for_a_frame_is_sent_cut_with_its_length(
    standin, replies_settle, settings
):
    settings.CHAT_MAX_SERVER_FRAME_BYTES = 100_000
    await sync_to_async(big_conversation_store)("one-huge", messages=2, chars=200_000)
    socket = await socket_open("/ws/chat/one-huge/")
    assert len(orjson.dumps(socket.history)) <= 100_000
    newest = socket.history["messages"][-1]
    assert newest["truncated"] is True
    assert newest["length"] == len("1:") + 200_000
    await socket.disconnect()


async def test_a_reply_that_arrives_in_one_huge_delta_is_sent_as_bounded_chunks(chat_socket, settings):
    settings.CHAT_RESYNC_PAGE_CHARS = 1000
    word = "x" * 5500  # the stand-in sends a word as one token, so one delta
    await chat_socket.send_json_to({"message": f"[[standin reply={word}]]"})
    frames = await reply_collect(chat_socket)
    chunks = [frame for frame in frames if frame["type"] == "chunk"]
    assert [len(frame["content"]) for frame in chunks] == [1000] * 5 + [500]
    assert [frame["offset"] for frame in chunks] == [0, 1000, 2000, 3000, 4000, 5000]
    assert chunks_text(frames) == word


async def test_every_frame_type_is_rate_limited_per_socket_and_the_socket_stays_open(chat_socket, settings):
    settings.CHAT_SOCKET_FRAME_RATE = "4/10 seconds"
    for _ in range(4):
        await chat_socket.send_json_to({"type": "history"})
        assert (await chat_socket.receive_json_from())["type"] == "history"
    await chat_socket.send_json_to({"type": "history"})
    refused = await chat_socket.receive_json_from()
    assert (refused["type"], refused["code"]) == ("error", "rate_limited")
    assert 0 < refused["retry_after"] <= 10
    await chat_socket.send_to(text_data="not json")  # bad frames count too
    assert (await chat_socket.receive_json_from())["code"] == "rate_limited"
    other = await socket_open("/ws/chat/other-tab/")  # per socket: another tab is unaffected
    await other.send_json_to({"type": "history"})
    assert (await other.receive_json_from())["type"] == "history"
    await other.disconnect()


async def test_a_stopped_reply_still_counts_what_it_streamed_against_the_quota(chat_socket, settings):
    await chat_socket.send_json_to({"message": "count me [[standin tokens=400 delay_ms=5]]"})
    start = await chat_socket.receive_json_from()
    seen = [await chat_socket.receive_json_from() for _ in range(20)]
    await chat_socket.send_json_to({"type": "stop"})
    frames = seen + await reply_collect(chat_socket)
    assert frames[-1]["finish_reason"] == "stopped"
    reply = await Message.objects.aget(pk=start["message_id"])
    assert reply.status == "interrupted"
    assert reply.content
    assert reply.completion_tokens == -(-len(reply.content) // 4)
    assert reply.total_tokens > reply.completion_tokens  # the prompt counts too

    settings.CHAT_DAILY_TOKEN_QUOTA = reply.total_tokens
    await chat_socket.send_json_to({"message": "over the quota now"})
    assert (await chat_socket.receive_json_from())["code"] == "quota_exceeded"


async def test_replies_in_flight_count_against_the_quota_and_their_number_is_capped(
    standin, replies_settle, settings
):
    first = await socket_open("/ws/chat/flight-1/")
    await first.send_json_to({"message": "long [[standin tokens=300 delay_ms=20]]"})
    start = await first.receive_json_from()
    for _ in range(5):
        await first.receive_json_from()
    second = await socket_open("/ws/chat/flight-2/")

    settings.CHAT_MAX_REPLIES_PER_OWNER = 1
    await second.send_json_to({"message": "a second at once"})
    refused = await second.receive_json_from()
    assert (refused["type"], refused["code"]) == ("error", "too_many_replies")

    settings.CHAT_MAX_REPLIES_PER_OWNER = 0
    await Message.objects.filter(pk=start["message_id"]).aupdate(content="x" * 400)  # as a flush would
    settings.CHAT_DAILY_TOKEN_QUOTA = 100  # the streaming reply's 400 characters are 100 tokens
    await second.send_json_to({"message": "over the quota while the first streams"})
    assert (await second.receive_json_from())["code"] == "quota_exceeded"
    assert not await Message.objects.filter(content__startswith="a second").aexists()

    await first.send_json_to({"type": "stop"})
    await reply_collect(first)
    await first.disconnect()
    await second.disconnect()


@pytest.fixture
def anonymous_rate_clean(settings):
    limits_forget()


async def anonymous_browser_socket(session_id: str, address: str) -> WebsocketCommunicator:
    """A socket from a browser with a session of its own (a fresh anonymous owner) at `address`."""
    store = SessionStore()
    await sync_to_async(store.create)()
    cookie = (b"cookie", f"{settings.SESSION_COOKIE_NAME}={store.session_key}".encode())
    communicator = WebsocketCommunicator(application, f"/ws/chat/{session_id}/", headers=[ORIGIN, cookie])
    communicator.scope["client"] = (address, 40000)  # as Daphne sets it from the proxy's X-Forwarded-For
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["type"] == "history"
    return communicator


async def test_anonymous_owners_share_a_message_limit_per_client_address(
    standin, replies_settle, settings, anonymous_rate_clean
):
    settings.CHAT_ANONYMOUS_RATE_LIMIT = "2/minute"
    ends = []
    for n in range(3):  # a new browser session each time: each is a new owner with a fresh limit
        socket = await anonymous_browser_socket(f"anon-{n}", "203.0.113.7")
        await socket.send_json_to({"message": f"hello {n} [[standin tokens=3]]"})
        frame = (await reply_collect(socket))[-1]
        ends.append(frame.get("code") or frame["type"])
        await socket.disconnect()
    assert ends == ["done", "done", "rate_limited"]
    elsewhere = await anonymous_browser_socket("anon-elsewhere", "198.51.100.9")
    await elsewhere.send_json_to({"message": "from another address [[standin tokens=3]]"})
    assert (await reply_collect(elsewhere))[-1]["type"] == "done"
    await elsewhere.disconnect()
