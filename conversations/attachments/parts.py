"""A user message with attachments as the API reads it: a list of content parts.

- an image: an `image_url` part with the file as a base64 data URL;
- a PDF: a `file` part (base64 `file_data` and its name) for a model that reads images (the providers
  that read PDFs read them as images and text), else its text layer, extracted once at upload, as text;
- a text or code file: its text, named, as a text part.

A turn's transaction only names the attachments its request carries; the files are read when the reply
starts, on the reply's side (`request_messages`, off the event loop and off the turn writer's thread), so
that a slow or missing file delays or degrades its own reply only. Each file goes once per request, at
the message that first named it; the files read (images, PDFs as files) fit in
CHAT_REQUEST_ATTACHMENT_MAX_BYTES, the newest first; a file left out or unreadable becomes a note.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..context import tokens_estimate
from ..models import Attachment

logger = logging.getLogger(__name__)

_LEFT_OUT = "left out, over the {max_bytes} bytes of files one request carries."


def request_messages(
    messages: Sequence[dict[str, Any]],
    attachments: Mapping[str, Attachment],
    *,
    files_readable: bool,
    max_bytes: int,
) -> list[dict[str, Any]]:
    """The upstream messages as sent: each one that names `attachments` (by `attachment_ids`) with its
    content as parts, read from storage; the others as they are."""
    named = [
        [i for i in dict.fromkeys(message.get("attachment_ids") or ()) if i in attachments]
        for message in messages
    ]
    first_named: dict[str, int] = {}
    for index, ids in enumerate(named):
        for i in ids:
            first_named.setdefault(i, index)
    sent = _within_budget(
        [i for ids in reversed(named) for i in ids],
        attachments,
        files_readable=files_readable,
        max_bytes=max_bytes,
    )
    built: list[dict[str, Any]] = []
    for index, (message, ids) in enumerate(zip(messages, named, strict=True)):
        plain = {key: value for key, value in message.items() if key != "attachment_ids"}
        if not ids:
            built.append(plain)
            continue
        parts: list[dict[str, Any]] = (
            [{"type": "text", "text": message["content"]}] if message["content"] else []
        )
        for i in ids:
            attachment = attachments[i]
            if first_named[i] != index:
                parts.append(_note(attachment, "sent with an earlier message."))
            elif i not in sent:
                parts.append(_note(attachment, _LEFT_OUT.format(max_bytes=max_bytes)))
            else:
                parts.append(_part(attachment, files_readable=files_readable))
        built.append({**plain, "content": parts})
    return built


def _read_whole(attachment: Attachment, *, files_readable: bool) -> bool:
    """Whether the attachment goes as its file's bytes (else as its text, kept in the database)."""
    return attachment.kind == Attachment.Kind.IMAGE or (
        attachment.kind == Attachment.Kind.PDF and files_readable
    )


def _within_budget(
    newest_first: list[str], attachments: Mapping[str, Attachment], *, files_readable: bool, max_bytes: int
) -> set[str]:
    """The attachments that go: every text, and the files read, newest first, while their bytes fit in
    `max_bytes`; from the first that does not fit, every older one is left out."""
    chosen: set[str] = set()
    spent, full = 0, False
    for i in dict.fromkeys(newest_first):
        attachment = attachments[i]
        if not _read_whole(attachment, files_readable=files_readable):
            chosen.add(i)
            continue
        full = full or spent + attachment.size > max_bytes
        if not full:
            spent += attachment.size
            chosen.add(i)
    return chosen


def _part(attachment: Attachment, *, files_readable: bool) -> dict[str, Any]:
    """One attachment's content part; a file that cannot be read is said to be unavailable."""
    if not _read_whole(attachment, files_readable=files_readable):
        text = attachment.text or "(no text could be read from this file)"
        return {"type": "text", "text": f"Attached file {attachment.name}:\n\n{text}"}
    try:
        # Opened through the storage: the row may be shared by turns read on other threads.
        with attachment.file.storage.open(attachment.file.name, "rb") as handle:
            data = base64.b64encode(handle.read()).decode("ascii")
    except Exception:  # any storage's failure (a missing file, S3 refusing): this file only is lost
        logger.warning("attachment unreadable", extra={"attachment_id": str(attachment.pk)}, exc_info=True)
        return _note(attachment, "file unavailable.")
    if attachment.kind == Attachment.Kind.IMAGE:
        url = f"data:{attachment.content_type};base64,{data}"
        return {"type": "image_url", "image_url": {"url": url, "detail": "auto"}}
    return {"type": "file", "file": {"file_data": data, "filename": attachment.name}}


def _note(attachment: Attachment, what: str) -> dict[str, Any]:
    return {"type": "text", "text": f"Attached file {attachment.name}: {what}"}


def mention_tokens(attachment: Attachment) -> int:
    """What a file named again in a request adds: its note (the longest one's length)."""
    return tokens_estimate(_note(attachment, _LEFT_OUT.format(max_bytes=10**12))["text"])


IMAGE_TILE = 512
PDF_PAGE_TOKENS = 1600


def attachment_tokens(attachment: Attachment, *, files_readable: bool) -> int:
    """What an attachment adds to its message's tokens, on the safe side: an image by its 512-pixel
    tiles (85 + 170 each, the largest rate in use), a PDF read as a file by its pages and text, a text
    by its bytes."""
    if attachment.kind == Attachment.Kind.IMAGE:
        tiles = math.ceil((attachment.width or IMAGE_TILE) / IMAGE_TILE) * math.ceil(
            (attachment.height or IMAGE_TILE) / IMAGE_TILE
        )
        return 85 + 170 * tiles
    text_tokens = tokens_estimate(attachment.text)
    if attachment.kind == Attachment.Kind.PDF and files_readable:
        return (attachment.pages or 1) * PDF_PAGE_TOKENS + text_tokens
    return text_tokens
