"""The API's OCR (`POST /v1/ocr`): a PDF's pages read as Markdown. A blocking call, on the process's
SDK client, for a worker thread."""

from __future__ import annotations

import base64
from typing import NamedTuple

from django.conf import settings

from ..text import text_storable
from .client import sdk_client
from .errors import sdk_errors


class OcrReading(NamedTuple):
    """What the OCR read: the pages' text as Markdown, in order; the model that read them; the pages."""

    text: str
    model: str
    pages: int


def ocr_read(pdf: bytes) -> OcrReading:
    """Read a PDF by OCR within CHAT_OCR_TIMEOUT seconds (retried once). Raise UpstreamError when the
    service fails (`sdk_error_name` names how)."""
    client = sdk_client(timeout=settings.CHAT_OCR_TIMEOUT, max_retries=1)
    url = "data:application/pdf;base64," + base64.b64encode(pdf).decode("ascii")
    with sdk_errors():
        response = client.ocr.process(document={"type": "document_url", "document_url": url})
    pages = sorted(response.pages, key=lambda page: page.index)
    text = text_storable("\n\n".join(page.markdown.strip() for page in pages).strip())
    return OcrReading(text, str(getattr(response, "model", "") or ""), len(pages))
