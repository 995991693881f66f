"""What the stand-in makes of a message's content parts: it names each image (with its pixel size, read
with Pillow) and each file (with its name and size) in its reply, and refuses images for a model its
catalog says cannot read them, as the real API would. Free of Django, like the stand-in."""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import pypdf
from PIL import Image, UnidentifiedImageError


def parts_described(content: Any) -> list[str]:
    """A phrase per image or file part of a user message's content, in order."""
    described: list[str] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url":
            described.append(_image_described(str((part.get("image_url") or {}).get("url", ""))))
        elif part.get("type") == "file":
            file = part.get("file") or {}
            size = len(_decoded(str(file.get("file_data", ""))))
            described.append(f"file {file.get('filename', '?')} of {size} bytes")
    return described


def has_image(messages: Any) -> bool:
    return any(
        isinstance(part, dict) and part.get("type") == "image_url"
        for message in messages
        if isinstance(messages, list) and isinstance(message, dict)
        for part in (message.get("content") if isinstance(message.get("content"), list) else [])
    )


def _image_described(url: str) -> str:
    _, _, data = url.partition(";base64,")
    try:
        with Image.open(io.BytesIO(_decoded(data))) as image:
            return f"image {image.width}x{image.height} {Image.MIME.get(image.format, '?')}"
    except (UnidentifiedImageError, OSError, ValueError):
        return "image (unreadable)"


def _decoded(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return b""


def ocr_pages(url: str) -> int | None:
    """How many pages the PDF in a data URL has, or None when it holds no PDF."""
    _, _, data = url.partition(";base64,")
    try:
        return len(pypdf.PdfReader(io.BytesIO(_decoded(data))).pages)
    except Exception:  # pypdf raises many kinds for what is not a PDF
        return None
