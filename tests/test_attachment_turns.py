"""Attachments in a conversation, through the real socket and real HTTP to the stand-in: what goes upstream
(the decoded bytes compared), what history shows, what is refused (nothing stored), and what an edit
and a deletion do."""

from __future__ import annotations

import base64
import io
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from PIL import Image

from conversations.models import Attachment, ChatModel, Conversation, Message

from .chat_sockets import BROWSER_SESSION_KEY, reply_collect, socket_open, suite_browser_handshake_headers
from .test_attachments import pdf_with_text

pytestmark = pytest.mark.django_db(transaction=True)


def png(size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (0, 128, 255)).save(out, format="PNG")
    return out.getvalue()


@sync_to_async
def uploaded(name: str, data: bytes, *, session_key: str = BROWSER_SESSION_KEY) -> dict:
    """An upload from the suite's browser (the socket's own session), through the real view."""
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    response = client.post("/api/attachments/", {"file": SimpleUploadedFile(name, data)})
    assert response.status_code == 201, response.content
    return response.json()


def stored_bytes(attachment_id: str) -> bytes:
    with Attachment.objects.get(pk=attachment_id).file.open("rb") as handle:
        return handle.read()


@pytest.fixture
async def catalog(standin) -> None:
    """The catalog synced from the stand-in: GPT-5.1 reads images (so PDFs go as files), the mini not."""
    await sync_to_async(call_command)("models_sync", stdout=io.StringIO())
    await ChatModel.objects.filter(name="openai/gpt-5.1-mini").aupdate(enabled=True)


async def test_an_image_a_pdf_and_a_code_file_reach_the_model_as_parts_and_history_shows_them(
    chat_socket, standin, catalog
):
    await suite_browser_handshake_headers()
    image = await uploaded("chart.png", png())
    pdf = await uploaded("report.pdf", pdf_with_text("Revenue grew by a third"))
    code = await uploaded("main.py", b"print('hello')\n")
    ids = [image["id"], pdf["id"], code["id"]]
    await chat_socket.send_json_to(
        {"message": "what do you see?", "model": "openai/gpt-5.1", "attachments": ids}
    )
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done", frames[-1]
    start = frames[0]
    assert [a["id"] for a in start["user_message"]["attachments"]] == ids

    (request,) = standin.requests()
    text, image_part, file_part, code_part = request["body"]["messages"][-1]["content"]
    assert text == {"type": "text", "text": "what do you see?"}
    header, data = image_part["image_url"]["url"].split(",", 1)
    assert header == "data:image/png;base64"
    assert base64.b64decode(data) == await sync_to_async(stored_bytes)(image["id"])
    assert file_part["type"] == "file"
    assert file_part["file"]["filename"] == "report.pdf"
    assert base64.b64decode(file_part["file"]["file_data"]) == pdf_with_text("Revenue grew by a third")
    assert code_part == {"type": "text", "text": "Attached file main.py:\n\nprint('hello')\n"}
    reply = "".join(frame["content"] for frame in frames if frame["type"] == "chunk")
    assert "I see: image 40x30 image/png; file report.pdf of" in reply

    again = await socket_open("/ws/chat/t1/")
    user = again.history["messages"][0]
    assert [(a["name"], a["content_type"]) for a in user["attachments"]] == [
        ("chart.png", "image/png"),
        ("report.pdf", "application/pdf"),
        ("main.py", "text/plain; charset=utf-8"),
    ]
    assert set(user["attachments"][0]) == {"id", "name", "size", "content_type", "url"}
    await again.disconnect()


async def test_a_pdf_goes_as_its_text_to_a_model_that_reads_no_files(chat_socket, standin):
    await suite_browser_handshake_headers()
    pdf = await uploaded("report.pdf", pdf_with_text("Revenue grew by a third"))
    await chat_socket.send_json_to({"message": "summarise", "attachments": [pdf["id"]]})
    assert (await reply_collect(chat_socket))[-1]["type"] == "done"
    _, part = standin.requests()[0]["body"]["messages"][-1]["content"]
    assert part["type"] == "text"
    assert "Attached file report.pdf:" in part["text"]
    assert "Revenue grew by a third" in part["text"]


async def test_bad_attachments_are_refused_and_nothing_is_stored(chat_socket, standin, catalog):
    await suite_browser_handshake_headers()
    image = await uploaded("a.png", png())
    other_session = "othersession000000000000000000000"
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore(session_key=other_session)
    await sync_to_async(store.create)()
    theirs = await uploaded("theirs.txt", b"not yours", session_key=store.session_key)
    cases = [
        ({"attachments": [str(uuid.uuid4())]}, "invalid_attachment"),
        ({"attachments": [theirs["id"]]}, "invalid_attachment"),
        ({"attachments": ["not-an-id"]}, "invalid_attachment"),
        ({"attachments": [image["id"]], "model": "openai/gpt-5.1-mini"}, "unsupported_attachment"),
    ]
    for extra, code in cases:
        await chat_socket.send_json_to({"message": "look", **extra})
        (error,) = await reply_collect(chat_socket)
        assert (error["type"], error["code"]) == ("error", code), error
    assert not await Message.objects.aexists()
    assert standin.requests() == []
    assert (await Attachment.objects.aget(pk=image["id"])).conversation_id is None  # still free to use


async def test_an_edit_keeps_its_turns_attachments_and_a_deleted_conversation_takes_them_along(
    chat_socket, standin, catalog, attachments_stored_apart
):
    await suite_browser_handshake_headers()
    image = await uploaded("a.png", png())
    await chat_socket.send_json_to({"message": "first", "attachments": [image["id"]]})
    frames = await reply_collect(chat_socket)
    user_id = frames[0]["user_message"]["id"]
    await chat_socket.send_json_to({"type": "edit", "message_id": user_id, "message": "first, edited"})
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done"
    assert [a["id"] for a in frames[0]["user_message"]["attachments"]] == [image["id"]]
    edited = standin.requests()[-1]["body"]["messages"][-1]["content"]
    assert [part["type"] for part in edited] == ["text", "image_url"]

    conversation = await Conversation.objects.aget(session_id="t1")
    assert (await Attachment.objects.aget(pk=image["id"])).conversation_id == conversation.pk
    assert len([p for p in attachments_stored_apart.rglob("*") if p.is_file()]) == 1
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = BROWSER_SESSION_KEY
    response = await sync_to_async(client.post)("/c/t1/delete")  # the sidebar's delete
    assert response.status_code == 200, response.content
    assert not await Attachment.objects.filter(pk=image["id"]).aexists()
    assert not [p for p in attachments_stored_apart.rglob("*") if p.is_file()]

    # The id of an attachment whose conversation was deleted is refused like any unknown id.
    again = await socket_open("/ws/chat/t2/")
    await again.send_json_to({"message": "again", "attachments": [image["id"]]})
    (error,) = await reply_collect(again)
    assert error["code"] == "invalid_attachment"
    await again.disconnect()


async def test_a_regenerate_sends_its_turns_attachments_again_and_retention_takes_them_along(
    chat_socket, standin, attachments_stored_apart
):
    from datetime import timedelta

    from django.utils import timezone

    from conversations.chat.upkeep import conversations_purge

    await suite_browser_handshake_headers()
    notes = await uploaded("notes.txt", b"remember the milk")
    await chat_socket.send_json_to({"message": "read this", "attachments": [notes["id"]]})
    frames = await reply_collect(chat_socket)
    await chat_socket.send_json_to({"type": "regenerate", "message_id": frames[0]["message_id"]})
    assert (await reply_collect(chat_socket))[-1]["type"] == "done"
    first, second = (request["body"]["messages"][-1]["content"] for request in standin.requests())
    assert first == second  # the regenerated reply was asked with the same file
    assert second[1]["text"] == "Attached file notes.txt:\n\nremember the milk"

    await Conversation.objects.filter(session_id="t1").aupdate(updated_at=timezone.now() - timedelta(days=40))
    assert await sync_to_async(conversations_purge)(older_than_days=30) == 1
    assert not await Attachment.objects.aexists()
    assert not [path for path in attachments_stored_apart.rglob("*") if path.is_file()]


async def test_too_many_attachments_or_too_many_bytes_in_one_message_are_refused(
    chat_socket, standin, settings
):
    await suite_browser_handshake_headers()
    settings.CHAT_ATTACHMENTS_PER_MESSAGE = 2
    ids = [(await uploaded(f"{n}.txt", b"x" * 100))["id"] for n in range(3)]
    await chat_socket.send_json_to({"message": "three", "attachments": ids})
    (error,) = await reply_collect(chat_socket)
    assert error["code"] == "invalid_attachment"
    assert "At most 2" in error["message"]
    settings.CHAT_ATTACHMENT_MESSAGE_MAX_BYTES = 150
    await chat_socket.send_json_to({"message": "two", "attachments": ids[:2]})
    (error,) = await reply_collect(chat_socket)
    assert error["code"] == "invalid_attachment"
    assert "150" in error["message"]
    assert not await Message.objects.aexists()


def image_parts(message: dict) -> list[bytes]:
    """The images a request's message carries, decoded."""
    content = message["content"] if isinstance(message["content"], list) else []
    return [
        base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
        for part in content
        if part["type"] == "image_url"
    ]


def text_parts(message: dict) -> list[str]:
    content = message["content"]
    return [content] if isinstance(content, str) else [p["text"] for p in content if p["type"] == "text"]


async def test_an_image_named_by_every_message_goes_once_per_request(chat_socket, standin, catalog):
    await suite_browser_handshake_headers()
    images = [await uploaded(f"{n}.png", png((40 + n, 30))) for n in range(3)]
    ids = [image["id"] for image in images]
    # Room for the three images (255 tokens each by the estimate) and the words, not for 24 of them.
    await ChatModel.objects.filter(name="openai/gpt-5.1").aupdate(input_token_limit=3000)
    for n in range(8):
        await chat_socket.send_json_to(
            {"message": f"look again {n} [[standin tokens=2]]", "model": "openai/gpt-5.1", "attachments": ids}
        )
        frames = await reply_collect(chat_socket)
        assert frames[-1]["type"] == "done"

    assert frames[0].get("context_dropped", 0) == 0  # each file counted once, as it is sent
    sent = standin.requests()[-1]["body"]["messages"]
    users = [message for message in sent if message["role"] == "user"]
    assert len(users) == 8
    every_image = [data for message in users for data in image_parts(message)]
    stored = [await sync_to_async(stored_bytes)(i) for i in ids]
    assert every_image == stored  # each once, where it was first named
    assert image_parts(users[0]) == stored
    later = text_parts(users[-1])
    assert later[0] == "look again 7 [[standin tokens=2]]"
    assert later[1:] == [f"Attached file {n}.png: sent with an earlier message." for n in range(3)]


async def test_a_requests_file_bytes_are_capped_leaving_the_oldest_out(
    chat_socket, standin, catalog, settings
):
    await suite_browser_handshake_headers()
    images = [await uploaded(f"{n}.png", png((40 + 20 * n, 30))) for n in range(3)]
    sizes = [image["size"] for image in images]
    settings.CHAT_REQUEST_ATTACHMENT_MAX_BYTES = sizes[1] + sizes[2]
    for n, image in enumerate(images):
        await chat_socket.send_json_to(
            {
                "message": f"image {n} [[standin tokens=2]]",
                "model": "openai/gpt-5.1",
                "attachments": [image["id"]],
            }
        )
        assert (await reply_collect(chat_socket))[-1]["type"] == "done"

    sent = [message for message in standin.requests()[-1]["body"]["messages"] if message["role"] == "user"]
    assert [len(image_parts(message)) for message in sent] == [0, 1, 1]
    assert image_parts(sent[2]) == [await sync_to_async(stored_bytes)(images[2]["id"])]
    (note,) = text_parts(sent[0])[1:]
    assert note.startswith("Attached file 0.png: left out")


async def test_a_file_gone_from_storage_is_said_unavailable_and_fails_no_other_turn(
    chat_socket, standin, catalog, settings
):
    from conversations.chat import turns
    from conversations.owners import ConversationRef, Owner
    from conversations.protocol import TurnOptions

    await suite_browser_handshake_headers()

    async def uploaded_then_lost(name: str) -> dict:
        upload = await uploaded(name, png())
        attachment = await Attachment.objects.aget(pk=upload["id"])
        await sync_to_async(attachment.file.storage.delete)(attachment.file.name)
        return upload

    owner = Owner(session_key=BROWSER_SESSION_KEY)
    settings.CHAT_MAX_REPLIES_PER_OWNER = 0  # the batch's replies stay streaming: no server streams them

    def request(session_id: str, ids: list[str]) -> turns.TurnRequest:
        return turns.TurnRequest(
            ref=ConversationRef(owner.key, session_id),
            owner=owner,
            options=TurnOptions(model="openai/gpt-5.1", attachments=ids),
            streamed_by="here",
            content=f"look {session_id}",
        )

    batch = [
        request("b1", [(await uploaded("kept.png", png()))["id"]]),
        request("b2", [(await uploaded_then_lost("gone.png"))["id"]]),
        request("b3", []),
    ]
    assert [type(result) for result in await sync_to_async(turns.turns_store)(batch)] == [turns.Turn] * 3

    gone = await uploaded_then_lost("gone.png")
    kept = await uploaded("kept.png", png((50, 50)))

    await chat_socket.send_json_to(
        {"message": "and this?", "model": "openai/gpt-5.1", "attachments": [gone["id"], kept["id"]]}
    )
    frames = await reply_collect(chat_socket)
    assert frames[-1]["type"] == "done", frames[-1]
    (sent,) = [request["body"]["messages"][-1] for request in standin.requests()]
    assert text_parts(sent) == ["and this?", "Attached file gone.png: file unavailable."]
    assert image_parts(sent) == [await sync_to_async(stored_bytes)(kept["id"])]
