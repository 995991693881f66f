"""Small files that cost a decoder much, built in memory for the tests and bench/upload_costs.py: each is
what an attacker would send, within the size limit and the formats we take."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def pdf_objects(objects: list[bytes]) -> bytes:
    """A PDF of these objects (numbered from 1, the first the catalog), with its cross-reference table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def pdf_stream(data: bytes, extra: bytes = b"") -> bytes:
    """A Flate-compressed stream object holding `data` (`extra`: more entries for its dictionary)."""
    packed = zlib.compress(data, 9)
    return (
        b"<< /Length %d /Filter /FlateDecode %s>>\nstream\n" % (len(packed), extra) + packed + b"\nendstream"
    )


FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def pdf_shared_content_bomb(pages: int = 3, operators: int = 950_000) -> bytes:
    """Pages that all draw one content stream of `operators` `(a) Tj` (a few KB compressed)."""
    content = b"BT /F1 12 Tf 72 720 Td\n" + b"(a) Tj\n" * operators + b"ET"
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R"
        b" /Resources << /Font << /F1 4 0 R >> >> >>"
    )
    return pdf_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
            pdf_stream(content),
            FONT,
            *[page] * pages,
        ]
    )


def pdf_form_xobject_bomb(draws: int = 5_000, operators: int = 2_000) -> bytes:
    """One page that draws a Form XObject of `operators` `(a) Tj` `draws` times."""
    form = b"BT /F1 12 Tf 72 720 Td\n" + b"(a) Tj\n" * operators + b"ET"
    content = b"/X1 Do\n" * draws
    return pdf_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /XObject << /X1 5 0 R >> >> >>",
            pdf_stream(content),
            pdf_stream(
                form,
                b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 6 0 R >> >> ",
            ),
            FONT,
        ]
    )


def _jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """The marker segments of a JPEG as (marker, whole segment bytes), a scan's entropy data included."""
    segments = []
    at = 2  # after SOI
    while at < len(data):
        marker = data[at + 1]
        if marker == 0xD9:  # EOI
            break
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        end = at + 2 + length
        if marker == 0xDA:  # SOS: entropy-coded data up to the next marker that is not RST or a stuffed 0xFF
            while True:
                end = data.index(b"\xff", end)
                if data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                    end += 2
                    continue
                break
        segments.append((marker, data[at:end]))
        at = end
    return segments


def jpeg_scan_bomb(repeats: int = 10_000, size: tuple[int, int] = (4096, 4096)) -> bytes:
    """A progressive JPEG whose last refinement scan (of a smooth image: a few hundred bytes) is repeated
    `repeats` times."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", progressive=True, quality=90)
    segments = _jpeg_segments(out.getvalue())
    last_scan = next(segment for marker, segment in reversed(segments) if marker == 0xDA)
    body = b"".join(segment for _, segment in segments)
    return b"\xff\xd8" + body + last_scan * repeats + b"\xff\xd9"


def lossless_pixels_bomb(format: str = "WEBP", size: tuple[int, int] = (8_000, 5_000)) -> bytes:
    """A one-colour image of 40 million pixels, a few KB as lossless WebP or PNG."""
    out = io.BytesIO()
    Image.new("RGB", size, (30, 90, 200)).save(
        out, format=format, **({"lossless": True} if format == "WEBP" else {})
    )
    return out.getvalue()
