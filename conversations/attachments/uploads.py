"""What an uploaded file is, by its content (never its name or the browser's word), and the bytes kept of it.

- Images (PNG, JPEG, GIF, WebP) are opened with Pillow and refused past `max_pixels` before anything is
  decoded (a decompression bomb), a JPEG also past `max_jpeg_scans` scans (a progressive JPEG repeating
  a scan costs a full pass over the image per copy). What is decoded is cut to `max_side` pixels on its
  longest side, as models see images anyway: a JPEG is decoded at a reduced scale (`draft`), the others
  reduced by a whole factor first. The result is turned upright by its EXIF orientation (in place) and
  encoded again: what is kept is pixels only, without EXIF, text chunks or anything appended (a
  polyglot's other half). JPEG stays JPEG; the others become PNG (an animated GIF keeps its first frame).
- PDFs are parsed with pypdf under lowered limits: encrypted, broken or longer than `max_pdf_pages` are
  refused; the text layer is extracted once, within one budget for the whole document (operators read,
  Form XObjects drawn, characters kept: a page reusing a stream, or a form drawn thousands of times,
  spends the same budget), and kept beside the file.
- Anything else must be UTF-8 text (a BOM allowed, no NUL): kept as it is, and its text too.
- A name (or declared type) that claims an image or a PDF the content is not is refused (claim_check).

Pure: bytes and DecodeLimits in, a `Checked` out or an `AttachmentRefused`; it runs in the upload workers
(upload_workers.py), and storage is attachments.py's.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import pypdf
from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from ..exceptions import AttachmentMisnamed, AttachmentRefused, AttachmentUnreadable, AttachmentUnsupported

IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
PDF_MAGIC = b"%PDF-"
UTF8_BOM = b"\xef\xbb\xbf"
# In a JPEG's entropy-coded data a 0xFF byte is always followed by 0x00 or a restart marker, so these two
# bytes only ever start a scan (or sit in a metadata segment: counting those too only errs on the safe side).
JPEG_START_OF_SCAN = b"\xff\xda"
# What a name's extension or a declared type claims a file is (only the kinds we decode: other names
# claim nothing we could hold them to).
CLAIMED_KINDS = {
    **dict.fromkeys(("png", "jpg", "jpeg", "jpe", "jfif", "gif", "webp"), "image"),
    "pdf": "pdf",
}
CLAIMED_KINDS_BY_TYPE = {**dict.fromkeys(IMAGE_FORMATS.values(), "image"), "application/pdf": "pdf"}
KIND_WORDS = {"image": "an image", "pdf": "a PDF", "text": "text"}
PDF_TOO_COSTLY = "That PDF takes more work to read than a file may"


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """How much decoding one file may cost (the settings of the same names, read in the server and sent
    to the worker that decodes)."""

    max_pixels: int
    max_side: int
    max_jpeg_scans: int
    max_pdf_pages: int
    max_pdf_operators: int
    max_pdf_form_draws: int
    max_pdf_text_chars: int

    @classmethod
    def from_settings(cls) -> DecodeLimits:
        return cls(
            max_pixels=settings.CHAT_ATTACHMENT_MAX_PIXELS,
            max_side=settings.CHAT_ATTACHMENT_MAX_SIDE,
            max_jpeg_scans=settings.CHAT_ATTACHMENT_MAX_JPEG_SCANS,
            max_pdf_pages=settings.CHAT_ATTACHMENT_MAX_PDF_PAGES,
            max_pdf_operators=settings.CHAT_PDF_MAX_OPERATORS,
            max_pdf_form_draws=settings.CHAT_PDF_MAX_FORM_DRAWS,
            max_pdf_text_chars=settings.CHAT_PDF_MAX_TEXT_CHARS,
        )


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


def upload_check(data: bytes, limits: DecodeLimits | None = None) -> Checked:
    """The kept form of an uploaded file's bytes. Raise AttachmentUnsupported for a type we do not take
    and AttachmentUnreadable for a file of a type we take that cannot be read safely within `limits`
    (the settings' when None)."""
    limits = limits or DecodeLimits.from_settings()
    if data.startswith(PDF_MAGIC):
        return _pdf_checked(data, limits)
    image = _image_open(data)
    if image is not None:
        return _image_checked(image, data, limits)
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


def _image_checked(image: Image.Image, data: bytes, limits: DecodeLimits) -> Checked:
    width, height = image.size
    source_format = image.format
    if source_format == "JPEG":
        if data.count(JPEG_START_OF_SCAN) > limits.max_jpeg_scans:
            raise AttachmentUnreadable(
                f"That JPEG has more than {limits.max_jpeg_scans} scans; save it again as an ordinary JPEG."
            )
        # Decoded at 1/2, 1/4 or 1/8 scale when that still covers the size it is kept at: libjpeg never
        # builds the full size, so the pixel cap below is on what is decoded.
        ratio = limits.max_side / max(width, height, 1)
        if ratio < 1:
            kept_size = (max(1, int(width * ratio)), max(1, int(height * ratio)))
            image.draft(image.mode if image.mode in ("RGB", "L") else None, kept_size)
    decoded_width, decoded_height = image.size
    if decoded_width * decoded_height > limits.max_pixels:
        raise AttachmentUnreadable(
            f"That image has {width}×{height} pixels; at most {limits.max_pixels:,} are taken."
        )
    try:
        image.seek(0)
        pixels = _image_reduced(image, limits.max_side)
        ImageOps.exif_transpose(pixels, in_place=True)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise AttachmentUnreadable("That image is damaged and cannot be read.") from exc
    except MemoryError as exc:
        raise AttachmentUnreadable("That image takes more memory to read than a file may.") from exc
    out = io.BytesIO()
    if source_format == "JPEG":
        pixels = pixels.convert("RGB") if pixels.mode not in ("RGB", "L") else pixels
        pixels.save(out, format="JPEG", quality=90)  # no exif, no icc_profile, no comments: pixels only
        content_type = "image/jpeg"
    else:
        pixels = pixels if pixels.mode in ("RGB", "RGBA", "L", "LA") else pixels.convert("RGBA")
        pixels.save(out, format="PNG")  # no pnginfo: no text chunks
        content_type = "image/png"
    return Checked(
        kind="image", content_type=content_type, data=out.getvalue(), width=pixels.width, height=pixels.height
    )


def _image_reduced(image: Image.Image, max_side: int) -> Image.Image:
    """The image decoded and cut to `max_side` on its longest side: reduced by a whole factor first (a
    box average in one pass, no other full-size copy), then resized to fit."""
    image.load()
    factor = max(image.size) // max_side
    if factor >= 2:
        if image.mode not in ("RGB", "RGBA", "L", "LA"):  # a palette or bilevel image has no averages
            image = image.convert("RGBA")
        image = image.reduce(factor)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image


class _PdfBudget:
    """What extracting one PDF's text may cost in all: operators read (those of Form XObjects too, each
    time one is drawn), forms drawn, characters kept. Spent by pypdf's visitor; past it, the PDF is
    refused."""

    def __init__(self, limits: DecodeLimits) -> None:
        self.operators = limits.max_pdf_operators
        self.form_draws = limits.max_pdf_form_draws

    def operator_read(self, operator: bytes, *_: Any) -> None:
        self.operators -= 1
        if self.operators < 0:
            raise AttachmentUnreadable(f"{PDF_TOO_COSTLY} (too many drawing operators in all).")
        if operator == b"Do":
            self.form_draws -= 1
            if self.form_draws < 0:
                raise AttachmentUnreadable(f"{PDF_TOO_COSTLY} (too many forms drawn).")


def _pdf_configuration(limits: DecodeLimits) -> dict[str, int]:
    """pypdf's own limits, lowered to what one upload may cost (its defaults allow 75 MB per stream and
    2 million tokens per content stream)."""
    return {
        "stream_parsing_work_maximum_count": limits.max_pdf_operators,
        "xform_maximum_invocations_per_extraction": limits.max_pdf_form_draws,
        "maximum_declared_stream_length": 20_000_000,
        "zlib_maximum_output_length": 20_000_000,
        "lzw_maximum_output_length": 20_000_000,
        "run_length_maximum_output_length": 20_000_000,
        "array_based_stream_maximum_output_length": 20_000_000,
        "stream_decoding_work_maximum_length": 50_000_000,
        "image_maximum_buffer_size": 20_000_000,
    }


def _pdf_checked(data: bytes, limits: DecodeLimits) -> Checked:
    budget = _PdfBudget(limits)
    try:
        with pypdf.apply_configuration(**_pdf_configuration(limits)):
            reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                raise AttachmentUnreadable("That PDF is encrypted; upload it without a password.")
            pages = len(reader.pages)
            if pages > limits.max_pdf_pages:
                raise AttachmentUnreadable(
                    f"That PDF has {pages} pages; at most {limits.max_pdf_pages} are taken."
                )
            texts: list[str] = []
            chars = 0
            for page in reader.pages:
                text = (page.extract_text(visitor_operand_before=budget.operator_read) or "").strip()
                chars += len(text)
                if chars > limits.max_pdf_text_chars:
                    raise AttachmentUnreadable(
                        f"{PDF_TOO_COSTLY} (more than {limits.max_pdf_text_chars:,} characters of text)."
                    )
                texts.append(text)
    except AttachmentRefused:
        raise
    except pypdf.errors.LimitReachedError as exc:  # one of pypdf's own limits, lowered above
        raise AttachmentUnreadable(f"{PDF_TOO_COSTLY} ({exc}).") from exc
    except MemoryError as exc:
        raise AttachmentUnreadable(f"{PDF_TOO_COSTLY} (memory).") from exc
    except Exception as exc:  # pypdf raises many kinds for a damaged file; all mean the same here
        raise AttachmentUnreadable("That PDF is damaged and cannot be read.") from exc
    if pages == 0:
        raise AttachmentUnreadable("That PDF has no pages.")
    return Checked(
        kind="pdf", content_type="application/pdf", data=data, text="\n\n".join(texts).strip(), pages=pages
    )


def _text_checked(data: bytes) -> Checked:
    body = data[len(UTF8_BOM) :] if data.startswith(UTF8_BOM) else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AttachmentUnsupported() from exc  # its default text names what is taken
    if "\x00" in text:
        raise AttachmentUnsupported()
    return Checked(kind="text", content_type="text/plain; charset=utf-8", data=data, text=text)
