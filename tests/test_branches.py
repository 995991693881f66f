"""Conversation branches and paged history, through the real socket and the stand-in: regenerate, edit
and switch keep every version, the model sees the active branch only, and history comes in pages.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from conversations.chat import selectors
from conversations.models import Conversation, Message
from conversations.owners import ConversationRef

from .chat_sockets import browser_owner_key, chunks_text, reply_collect, socket_open

pytestmark = pytest.mark.django_db(transaction=True)

threads_backfill = importlib.import_module(
    "conversations.migrations.0007_message_threads_and_branches"
).threads_backfill


async def turn(socket: WebsocketCommunicator, frame: dict[str, Any]) -> list[dict[str, Any]]:
    """Send a frame that starts a reply; return its frames up to the reply's end."""
    await socket.send_json_to(frame)
    frames = await reply_collect(socket)
    assert frames[0]["type"] == "start", frames
    return frames


async def say(socket: WebsocketCommunicator, text: str) -> list[dict[str, Any]]:
    return await turn(socket, {"message": text})


async def frame_of_type(socket: WebsocketCommunicator, kind: str) -> dict[str, Any]:
    """The next frame of that type (or an error), skipping the chunks of a reply streaming meanwhile."""
    while True:
        frame = await socket.receive_json_from(timeout=10)
        if frame["type"] in (kind, "error"):
            return frame
        assert frame["type"] in ("chunk", "tool"), frame  # never skip the end of a reply


async def refused(socket: WebsocketCommunicator, frame: dict[str, Any]) -> str:
    """Send a frame that must be refused; return the error code."""
    await socket.send_json_to(frame)
    answer = await frame_of_type(socket, "error")
    assert answer["type"] == "error", answer
    assert "message_id" not in answer
    return answer["code"]


async def conversation_of(session_id: str) -> Conversation:
    return await Conversation.objects.aget(owner_key=browser_owner_key(), session_id=session_id)


async def rows(**filters: Any) -> list[tuple[int, str, int | None]]:
    """(id, role, parent id) of the stored messages, oldest id first."""
    query = Message.objects.filter(**filters).order_by("id").values_list("id", "role", "parent_id")
    return [row async for row in query]


def upstream_turns(standin: Any) -> list[list[dict[str, str]]]:
    return [request["body"]["messages"] for request in standin.requests()]


async def three_versions_of_a_chat(socket: WebsocketCommunicator) -> dict[str, Any]:
    """first → A1 → second → A2, then the first message edited: first v2 → B1 (the active branch)."""
    first = await say(socket, "first")
    second = await say(socket, "second")
    edited = await turn(
        socket, {"type": "edit", "message_id": first[0]["user_message"]["id"], "message": "first v2"}
    )
    return {"first": first, "second": second, "edited": edited}


async def test_each_turn_follows_the_active_leaf(chat_socket, standin):
    first = await say(chat_socket, "one")
    second = await say(chat_socket, "two")
    one, two = first[0]["user_message"], second[0]["user_message"]
    assert (one["parent_id"], first[0]["parent_id"]) == (None, one["id"])
    assert (two["parent_id"], second[0]["parent_id"]) == (first[0]["message_id"], two["id"])
    assert two["siblings"] == [two["id"]]
    assert await rows() == [
        (one["id"], "user", None),
        (first[0]["message_id"], "assistant", one["id"]),
        (two["id"], "user", first[0]["message_id"]),
        (second[0]["message_id"], "assistant", two["id"]),
    ]
    assert (await conversation_of("t1")).current_message_id == second[0]["message_id"]


async def test_regenerate_opens_a_sibling_reply_and_the_model_sees_the_active_branch_only(
    chat_socket, standin
):
    first = await say(chat_socket, "first")
    second = await say(chat_socket, "second")
    old_reply, user_id = second[0]["message_id"], second[0]["user_message"]["id"]

    frames = await turn(chat_socket, {"type": "regenerate", "message_id": old_reply})
    start = frames[0]
    assert start["user_message"] is None
    assert start["parent_id"] == user_id
    assert start["message_id"] != old_reply
    assert frames[-1]["type"] == "done"

    assert await rows(parent_id=user_id) == [
        (old_reply, "assistant", user_id),
        (start["message_id"], "assistant", user_id),
    ]
    assert (await conversation_of("t1")).current_message_id == start["message_id"]
    # The model got the branch up to the user message: no copy of the reply it replaces.
    assert upstream_turns(standin)[-1] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": chunks_text(first)},
        {"role": "user", "content": "second"},
    ]
    again = await socket_open("/ws/chat/t1/")
    *_, last = again.history["messages"]
    assert (last["id"], last["content"]) == (start["message_id"], chunks_text(frames))
    assert last["siblings"] == [old_reply, start["message_id"]]
    await again.disconnect()


async def test_editing_the_first_message_starts_a_new_branch_from_the_top(chat_socket, standin):
    chat = await three_versions_of_a_chat(chat_socket)
    old_user = chat["first"][0]["user_message"]["id"]
    start, *_, end = chat["edited"]
    new_user = start["user_message"]
    assert end["type"] == "done"
    assert (new_user["content"], new_user["parent_id"]) == ("first v2", None)
    assert new_user["siblings"] == [old_user, new_user["id"]]
    assert start["parent_id"] == new_user["id"]

    # The model got the edited text only: not the old text, nor the turns after it.
    assert upstream_turns(standin)[-1] == [{"role": "user", "content": "first v2"}]

    await chat_socket.send_json_to({"type": "history"})
    history = await frame_of_type(chat_socket, "history")
    assert [(m["id"], m["content"]) for m in history["messages"]] == [
        (new_user["id"], "first v2"),
        (start["message_id"], chunks_text(chat["edited"])),
    ]
    assert [m["siblings"] for m in history["messages"]] == [[old_user, new_user["id"]], [start["message_id"]]]
    assert history["has_more"] is False
    assert history["session_id"] == "t1"
    # Nothing was deleted: both versions of the first turn, and everything after the old one, are kept.
    assert len(await rows(conversation__session_id="t1")) == 6


async def test_switching_back_shows_the_old_branch_everywhere_and_the_next_send_continues_it(
    chat_socket, standin
):
    chat = await three_versions_of_a_chat(chat_socket)
    other_tab = await socket_open("/ws/chat/t1/")
    first, second = chat["first"], chat["second"]
    old_leaf = second[0]["message_id"]

    await chat_socket.send_json_to({"type": "switch", "message_id": first[0]["user_message"]["id"]})
    for tab in (chat_socket, other_tab):
        history = await frame_of_type(tab, "history")
        assert [m["id"] for m in history["messages"]] == [
            first[0]["user_message"]["id"],
            first[0]["message_id"],
            second[0]["user_message"]["id"],
            old_leaf,
        ]
    assert (await conversation_of("t1")).current_message_id == old_leaf

    third = await say(chat_socket, "third")
    assert third[0]["user_message"]["parent_id"] == old_leaf
    assert third[0]["parent_id"] == third[0]["user_message"]["id"]
    assert upstream_turns(standin)[-1] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": chunks_text(first)},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": chunks_text(second)},
        {"role": "user", "content": "third"},
    ]
    assert (await frame_of_type(other_tab, "start"))["message_id"] == third[0]["message_id"]
    await other_tab.disconnect()


async def test_switching_to_a_reply_picks_that_version(chat_socket, standin):
    await say(chat_socket, "pick one")
    frames = await say(chat_socket, "again")
    older = frames[0]["message_id"]
    newer = (await turn(chat_socket, {"type": "regenerate", "message_id": older}))[0]["message_id"]

    await chat_socket.send_json_to({"type": "switch", "message_id": older})
    history = await frame_of_type(chat_socket, "history")
    assert history["messages"][-1]["id"] == older
    assert history["messages"][-1]["siblings"] == [older, newer]
    assert (await conversation_of("t1")).current_message_id == older


async def test_regenerating_a_failed_reply_is_the_retry(chat_socket, standin, settings):
    settings.CHAT_UPSTREAM_MAX_RETRIES = 0
    failed = await say(chat_socket, "fail [[standin status=500]]")
    assert (failed[-1]["type"], failed[-1]["code"]) == ("error", "upstream_error")
    failed_id = failed[0]["message_id"]

    standin.script({"reply": "Back on track."})  # the upstream recovered
    frames = await turn(chat_socket, {"type": "regenerate", "message_id": failed_id})
    assert frames[-1]["type"] == "done"
    assert chunks_text(frames) == "Back on track."
    assert frames[0]["parent_id"] == failed[0]["user_message"]["id"]
    assert upstream_turns(standin)[-1] == [{"role": "user", "content": "fail [[standin status=500]]"}]

    retried = await Message.objects.aget(pk=frames[0]["message_id"])
    assert (retried.status, retried.content) == ("complete", "Back on track.")
    assert (await Message.objects.aget(pk=failed_id)).status == "error"  # kept, as the older version
    assert (await conversation_of("t1")).current_message_id == retried.pk


@sync_to_async
def long_thread(owner_key: str, session_id: str, length: int) -> list[int]:
    """A conversation of `length` messages, each following the one before; return their ids in order."""
    conversation = Conversation.objects.create(owner_key=owner_key, session_id=session_id, title="long")
    ids, parent = [], None
    for index in range(length):
        parent = Message.objects.create(
            conversation=conversation,
            parent=parent,
            role="user" if index % 2 == 0 else "assistant",
            content=f"message {index}",
        )
        ids.append(parent.pk)
    conversation.current_message = parent
    conversation.save(update_fields=["current_message"])
    return ids


async def test_history_comes_in_pages_of_the_active_branch(standin, replies_settle):
    path = await long_thread(browser_owner_key(), "paged", 120)
    mine = await conversation_of("paged")
    off_path = await Message.objects.acreate(conversation=mine, parent_id=path[9], role="user", content="x")
    (theirs,) = await long_thread("s:someone-else", "paged", 1)
    socket = await socket_open("/ws/chat/paged/")

    history = socket.history
    assert [m["id"] for m in history["messages"]] == path[70:]
    assert history["has_more"] is True

    await socket.send_json_to({"type": "history", "before": path[70]})
    page = await socket.receive_json_from()
    assert page == {
        "type": "history_page",
        "before": path[70],
        "messages": page["messages"],
        "has_more": True,
    }
    assert [m["id"] for m in page["messages"]] == path[20:70]
    assert [m["content"] for m in page["messages"][:2]] == ["message 20", "message 21"]
    assert page["messages"][0]["parent_id"] == path[19]

    await socket.send_json_to({"type": "history", "before": path[20]})
    page = await socket.receive_json_from()
    assert ([m["id"] for m in page["messages"]], page["has_more"]) == (path[:20], False)
    assert page["messages"][10]["siblings"] == [path[10], off_path.pk]

    for before in (theirs, off_path.pk, path[-1] + 10_000):
        assert await refused(socket, {"type": "history", "before": before}) == "invalid_message"
    await socket.disconnect()


async def test_a_page_size_setting_applies(standin, replies_settle, settings):
    settings.CHAT_HISTORY_PAGE = 3
    path = await long_thread(browser_owner_key(), "small", 7)
    socket = await socket_open("/ws/chat/small/")
    assert [m["id"] for m in socket.history["messages"]] == path[4:]
    await socket.send_json_to({"type": "history", "before": path[1]})
    page = await socket.receive_json_from()
    assert ([m["id"] for m in page["messages"]], page["has_more"]) == ([path[0]], False)
    await socket.disconnect()


async def test_frames_naming_the_wrong_message_are_refused_and_change_nothing(chat_socket, standin):
    frames = await say(chat_socket, "mine")
    user_id, reply_id = frames[0]["user_message"]["id"], frames[0]["message_id"]
    elsewhere = await socket_open("/ws/chat/elsewhere/")
    other = await say(elsewhere, "another conversation")
    other_user, other_reply = other[0]["user_message"]["id"], other[0]["message_id"]
    before = await rows()
    requests = len(standin.requests())

    bad_frames = [
        {"type": "regenerate", "message_id": user_id},
        {"type": "edit", "message_id": reply_id, "message": "edit a reply?"},
        {"type": "regenerate", "message_id": other_reply},
        {"type": "edit", "message_id": other_user, "message": "not here"},
        {"type": "switch", "message_id": other_user},
        {"type": "switch", "message_id": reply_id + 10_000},
        *(
            {"type": kind, "message_id": bad, "message": "x"}
            for kind in ("regenerate", "edit", "switch")
            for bad in ("1", 1.0, True, 0, -3, None, [reply_id], 2**63)
        ),
        {"type": "switch"},
        {"type": "history", "before": "5"},
        {"type": "history", "before": False},
        {"type": "history", "before": 0},
    ]
    for frame in bad_frames:
        assert await refused(chat_socket, frame) == "invalid_message", frame
    assert await refused(chat_socket, {"type": "edit", "message_id": user_id, "message": "  "}) == (
        "invalid_message"
    )
    assert await rows() == before
    assert len(standin.requests()) == requests
    assert (await conversation_of("t1")).current_message_id == reply_id
    await elsewhere.disconnect()


async def test_switch_edit_and_regenerate_are_busy_while_a_reply_streams(chat_socket, standin):
    first = await say(chat_socket, "short")
    first_user, first_reply = first[0]["user_message"]["id"], first[0]["message_id"]
    await chat_socket.send_json_to({"message": "long one [[standin tokens=200 delay_ms=15]]"})
    start = await frame_of_type(chat_socket, "start")

    assert await refused(chat_socket, {"type": "switch", "message_id": first_user}) == "busy"
    assert await refused(chat_socket, {"type": "regenerate", "message_id": first_reply}) == "busy"
    # With a client_id the frame reaches the store (it may be a resend), which is busy as well.
    regenerate = {"type": "regenerate", "message_id": first_reply, "client_id": "r-busy"}
    assert await refused(chat_socket, regenerate) == "busy"
    edit = {"type": "edit", "message_id": first_user, "message": "v2", "client_id": "e-busy"}
    assert await refused(chat_socket, edit) == "busy"

    # A history asked for mid-reply is the one a join gets: the text so far, then the rest.
    await chat_socket.send_json_to({"type": "history"})
    history = await frame_of_type(chat_socket, "history")
    assert history["streaming"]["message_id"] == start["message_id"]
    assert history["messages"][-1]["id"] == start["message_id"]
    assert history["messages"][-1]["content"] == history["streaming"]["content"]
    rest = await reply_collect(chat_socket)
    assert rest[-1]["type"] == "done"
    assert all(f["offset"] >= history["streaming"]["offset"] for f in rest if f["type"] == "chunk")

    assert (await conversation_of("t1")).current_message_id == start["message_id"]
    assert await Message.objects.filter(client_id__in=["r-busy", "e-busy"]).acount() == 0


async def test_a_resent_regenerate_is_a_duplicate_and_opens_one_reply(chat_socket, standin):
    frames = await say(chat_socket, "once more")
    user_id = frames[0]["user_message"]["id"]
    regenerate = {"type": "regenerate", "message_id": frames[0]["message_id"], "client_id": "regen-1"}
    again = await turn(chat_socket, regenerate)

    await chat_socket.send_json_to(regenerate)
    duplicate = await chat_socket.receive_json_from()
    assert duplicate == {"type": "duplicate", "client_id": "regen-1", "message_id": again[0]["message_id"]}
    assert len(await rows(parent_id=user_id)) == 2
    assert len(standin.requests()) == 2
    assert await chat_socket.receive_nothing()


async def test_a_resent_edit_is_a_duplicate(chat_socket, standin):
    frames = await say(chat_socket, "typo hree")
    edit = {
        "type": "edit",
        "message_id": frames[0]["user_message"]["id"],
        "message": "here",
        "client_id": "e-1",
    }
    edited = await turn(chat_socket, edit)
    await chat_socket.send_json_to(edit)
    duplicate = await chat_socket.receive_json_from()
    assert duplicate["message_id"] == edited[0]["user_message"]["id"]
    assert await Message.objects.filter(content="here").acount() == 1


async def test_export_keeps_every_version_and_markdown_shows_the_active_branch(chat_socket, standin):
    chat = await three_versions_of_a_chat(chat_socket)
    export = await sync_to_async(selectors.conversation_export)(
        owner_key=browser_owner_key(), session_id="t1"
    )
    assert export["current_message_id"] == chat["edited"][0]["message_id"]
    assert len(export["messages"]) == 6
    by_content = {m["content"]: m for m in export["messages"]}
    assert by_content["first v2"]["siblings"] == [by_content["first"]["id"], by_content["first v2"]["id"]]
    assert by_content["second"]["parent_id"] == chat["first"][0]["message_id"]

    markdown = selectors.conversation_as_markdown(export)
    assert "first v2" in markdown
    assert chunks_text(chat["edited"]) in markdown
    assert "second" not in markdown
    assert "\n\nfirst\n" not in markdown


@sync_to_async
def unthreaded(session_id: str, *created_minutes: int) -> tuple[Conversation, list[int]]:
    """Rows as they were before threads: no parents, no current message. Return them in thread order."""
    conversation = Conversation.objects.create(owner_key="public", session_id=session_id)
    now = timezone.now()
    messages = [
        Message.objects.create(
            conversation=conversation,
            role="user" if index % 2 == 0 else "assistant",
            content=str(index),
            created_at=now + timedelta(minutes=minute),
        )
        for index, minute in enumerate(created_minutes)
    ]
    ordered = sorted(messages, key=lambda message: (message.created_at, message.pk))
    return conversation, [message.pk for message in ordered]


async def test_the_migration_chains_existing_messages_in_time_order():
    linear, linear_ids = await unthreaded("old-1", 0, 1, 2, 3, 4)
    # Created out of id order (an imported row), and two with the same timestamp (id breaks the tie).
    shuffled, shuffled_ids = await unthreaded("old-2", 5, 1, 3, 3, 0)
    empty = await Conversation.objects.acreate(owner_key="public", session_id="old-3")

    chained = await sync_to_async(threads_backfill)(Conversation, Message, batch_size=2)

    assert chained == 2
    for conversation, ids in ((linear, linear_ids), (shuffled, shuffled_ids)):
        parents = dict(await sync_to_async(selectors.thread_pairs)(conversation_id=conversation.pk))
        assert [parents[pk] for pk in ids] == [None, *ids[:-1]]
        await conversation.arefresh_from_db()
        assert conversation.current_message_id == ids[-1]
    await empty.arefresh_from_db()
    assert empty.current_message_id is None
    history = await sync_to_async(selectors.conversation_history)(ref=ConversationRef("public", "old-2"))
    assert [m["id"] for m in history["messages"]] == shuffled_ids
