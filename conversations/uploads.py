"""What an uploaded file is, by its content (never its name or the browser's word), and the bytes kept of it.

- Images (PNG, JPEG, GIF, WebP) are opened with Pillow, refused past CHAT_ATTACHMENT_MAX_PIXELS (a
  decompression bomb never gets decoded), turned upright by their EXIF orientation and encoded again:
  what is kept is pixels only, without EXIF, text chunks or anything appended (a polyglot's other half).
  JPEG stays JPEG; the others become PNG (an animated GIF keeps its first frame).
- PDFs are parsed with pypdf: encrypted, broken or longer than CHAT_ATTACHMENT_MAX_PDF_PAGES are refused;
  the text layer is extracted once and kept beside the file.
- Anything else must be UTF-8 text (a BOM allowed, no NUL): kept as it is, and its text too.
- A name (or declared type) that claims an image or a PDF the content is not is refused (claim_check).

Pure: bytes in, a `Checked` out or an `AttachmentRefused`; storage is attachments.py's.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import pypdf
from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from .exceptions import AttachmentMisnamed, AttachmentRefused, AttachmentUnreadable, AttachmentUnsupported

IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
PDF_MAGIC = b"%PDF-"
UTF8_BOM = b"\xef\xbb\xbf"
# What a name's extension or a declared type claims a file is (only the kinds we decode: other names
# claim nothing we could hold them to).
CLAIMED_KINDS = {
    **dict.fromkeys(("png", "jpg", "jpeg", "jpe", "jfif", "gif", "webp"), "image"),
    "pdf": "pdf",
}
CLAIMED_KINDS_BY_TYPE = {**dict.fromkeys(IMAGE_FORMATS.values(), "image"), "application/pdf": "pdf"}
KIND_WORDS = {"image": "an image", "pdf": "a PDF", "text": "text"}


@dataclass(frozen=True, slots=True)
class Checked:
    """A file as it is kept: its kind (`image`, `pdf`, `text`), content type, bytes, and what was read
    of it (an image's size, a PDF's pages and text, a text file's text)."""

    kind: str
    content_type: str
    data: bytes
    text: str = ""
    width: int | None = None
    height: int | None = None
    pages: int | None = None


def upload_check(data: bytes) -> Checked:
    """The kept form of an uploaded file's bytes. Raise AttachmentUnsupported for a type we do not take
    and AttachmentUnreadable for a file of a type we take that cannot be read safely."""
    if data.startswith(PDF_MAGIC):
        return _pdf_checked(data)
    image = _image_open(data)
    if image is not None:
        return _image_checked(image)
    return _text_checked(data)


def claim_check(checked: Checked, *, name: str, declared_type: str) -> None:
    """Refuse a file whose name's extension, or the browser's declared type, claims a kind (an image, a
    PDF) its content is not: `photo.png` holding an HTML page would be listed and offered as a picture.
    A name that claims nothing we take (`notes.txt`, `Makefile`, `hello.py`) never is refused, and an image
    is an image whatever format its name says (it is encoded again anyway)."""
    extension = name.rpartition(".")[2].lower() if "." in name else ""
    claimed = CLAIMED_KINDS.get(extension) or CLAIMED_KINDS_BY_TYPE.get(declared_type.split(";")[0].strip())
    if claimed is not None and claimed != checked.kind:
        raise AttachmentMisnamed(
            f"“{name}” is named as {KIND_WORDS[claimed]}, but it holds {KIND_WORDS[checked.kind]}; rename it"
            " or attach the file it names."
        )


def _image_open(data: bytes) -> Image.Image | None:
    """The image in `data`, opened lazily (nothing decoded yet), or None when it is not one we take."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS))
    except UnidentifiedImageError:
        return None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise AttachmentUnreadable("That image is too large to open safely.") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise AttachmentUnreadable("That image is damaged and cannot be read.") from exc
    return image


def _image_checked(image: Image.Image) -> Checked:
    width, height = image.size
    most = settings.CHAT_ATTACHMENT_MAX_PIXELS
    if width * height > most:
        raise AttachmentUnreadable(f"That image has {width}×{height} pixels; at most {most:,} are taken.")
    source_format = image.format
    try:
        image.seek(0)
        upright = ImageOps.exif_transpose(image)
        upright.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise AttachmentUnreadable("That image is damaged and cannot be read.") from exc
    out = io.BytesIO()
    if source_format == "JPEG":
        pixels = upright.convert("RGB") if upright.mode not in ("RGB", "L") else upright
        pixels.save(out, format="JPEG", quality=90)  # no exif, no icc_profile, no comments: pixels only
        content_type = "image/jpeg"
    else:
        pixels = upright if upright.mode in ("RGB", "RGBA", "L", "LA") else upright.convert("RGBA")
        pixels.save(out, format="PNG")  # no pnginfo: no text chunks
        content_type = "image/png"
    return Checked(
        kind="image", content_type=content_type, data=out.getvalue(), width=pixels.width, height=pixels.height
    )


def _pdf_checked(data: bytes) -> Checked:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise AttachmentUnreadable("That PDF is encrypted; upload it without a password.")
        pages = len(reader.pages)
        if pages > settings.CHAT_ATTACHMENT_MAX_PDF_PAGES:
            raise AttachmentUnreadable(
                f"That PDF has {pages} pages; at most {settings.CHAT_ATTACHMENT_MAX_PDF_PAGES} are taken."
            )
        text = "\n\n".join((page.extract_text() or "").strip() for page in reader.pages).strip()
    except AttachmentRefused:
        raise
    except Exception as exc:  # pypdf raises many kinds for a damaged file; all mean the same here
        raise AttachmentUnreadable("That PDF is damaged and cannot be read.") from exc
    if pages == 0:
        raise AttachmentUnreadable("That PDF has no pages.")
    return Checked(kind="pdf", content_type="application/pdf", data=data, text=text, pages=pages)


def _text_checked(data: bytes) -> Checked:
    body = data[len(UTF8_BOM) :] if data.startswith(UTF8_BOM) else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AttachmentUnsupported() from exc  # its default text names what is taken
    if "\x00" in text:
        raise AttachmentUnsupported()
    return Checked(kind="text", content_type="text/plain; charset=utf-8", data=data, text=text)
