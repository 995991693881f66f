"""The text of a scanned PDF (one without a text layer), read by the API's OCR (`POST /v1/ocr`, through
the SDK), once, when it is uploaded. Without an API key, or when the service fails, the PDF is kept
without text: a model that reads files still gets the file; one that does not is told it has no text."""

from __future__ import annotations

import base64
import logging

import dedalus_labs
from django.conf import settings

logger = logging.getLogger(__name__)


def pdf_text_by_ocr(data: bytes) -> str:
    """The pages' text as Markdown, in order; "" when the OCR could not be had."""
    if not settings.DEDALUS_API_KEY:
        return ""
    client = dedalus_labs.Dedalus(
        api_key=settings.DEDALUS_API_KEY,
        base_url=settings.DEDALUS_BASE_URL,
        timeout=settings.CHAT_OCR_TIMEOUT,
        max_retries=1,
    )
    url = "data:application/pdf;base64," + base64.b64encode(data).decode("ascii")
    try:
        response = client.ocr.process(document={"type": "document_url", "document_url": url})
    except dedalus_labs.APIError as exc:
        logger.warning("OCR failed; the PDF is kept without text", extra={"reason": type(exc).__name__})
        return ""
    finally:
        client.close()
    pages = sorted(response.pages, key=lambda page: page.index)
    return "\n\n".join(page.markdown.strip() for page in pages).strip()
