"""A user message with attachments as the API reads it: a list of content parts.

- an image: an `image_url` part with the file as a base64 data URL;
- a PDF: a `file` part (base64 `file_data` and its name) for a model that reads images (the providers
  that read PDFs read them as images and text), else its text layer, extracted once at upload, as text;
- a text or code file: its text, named, as a text part.

Files are read from the attachments storage when the turn is stored (the turn writer's thread), once.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from typing import Any

from .context import tokens_estimate
from .models import Attachment


def content_parts(
    text: str, attachments: Iterable[Attachment], *, files_readable: bool
) -> list[dict[str, Any]]:
    """`text` and the `attachments` (read from storage) as content parts, the text first."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for attachment in attachments:
        if attachment.kind == Attachment.Kind.IMAGE:
            data = base64.b64encode(_read(attachment)).decode("ascii")
            url = f"data:{attachment.content_type};base64,{data}"
            parts.append({"type": "image_url", "image_url": {"url": url, "detail": "auto"}})
        elif attachment.kind == Attachment.Kind.PDF and files_readable:
            data = base64.b64encode(_read(attachment)).decode("ascii")
            parts.append({"type": "file", "file": {"file_data": data, "filename": attachment.name}})
        else:
            text = attachment.text or "(no text could be read from this file)"
            parts.append({"type": "text", "text": f"Attached file {attachment.name}:\n\n{text}"})
    return parts


def _read(attachment: Attachment) -> bytes:
    with attachment.file.open("rb") as handle:
        return handle.read()


def message_with_parts(
    message: dict[str, Any], attachments: dict[str, Attachment], *, files_readable: bool
) -> dict[str, Any]:
    """An upstream message as sent: its content as parts when it names attachments (those still kept)."""
    ids = message.get("attachment_ids") or ()
    plain = {"role": message["role"], "content": message["content"]}
    chosen = [attachments[i] for i in ids if i in attachments]
    if not chosen:
        return plain
    return {**plain, "content": content_parts(message["content"], chosen, files_readable=files_readable)}


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
