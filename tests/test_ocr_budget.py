"""Scans read by the API's OCR (the stand-in, over real HTTP) after the upload returned, and the limits of
a read paid with the operator's key: none for anonymous owners by default, one read per owner and
content, pages per owner and day, reads at once; each read in the usage ledger."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pypdf
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from conversations.attachments import ocr
from conversations.models import Attachment, UsageEntry

pytestmark = pytest.mark.django_db(transaction=True)  # the reads run on threads of their own

UPLOAD = "/api/attachments/"


def scan(pages: int = 2, width: int = 200) -> bytes:
    """A PDF of blank pages (no text layer); another `width`, other bytes."""
    writer = pypdf.PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=width, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def upload(client: Client, data: bytes, name: str = "scan.pdf") -> dict:
    response = client.post(UPLOAD, {"file": SimpleUploadedFile(name, data, "application/pdf")})
    assert response.status_code == 201, response.content
    return response.json()


def ocr_calls(standin) -> int:
    return sum(1 for request in standin.requests() if request["path"] == "/v1/ocr")


@pytest.fixture
def signed_in() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("reader", password="pw-for-tests-only"))
    return client


@pytest.fixture
def anonymous() -> Client:
    client = Client()
    client.get("/c/warmup/")  # the page gives the browser its session
    return client


def test_a_scan_is_read_after_the_upload_returned_and_billed_in_the_ledger(signed_in, standin):
    shown = upload(signed_in, scan(2))
    assert shown["reading_text"] is True  # said at once: the text is on its way
    ocr.reads_settle_for_testing()
    attachment = Attachment.objects.get()
    assert attachment.text == "Page 1 read by OCR.\n\nPage 2 read by OCR."
    assert (attachment.text_reading, attachment.text_bytes) == ("read", len(attachment.text))
    assert ocr_calls(standin) == 1
    entry = UsageEntry.objects.get()
    assert (entry.kind, entry.owner_key, entry.pages, entry.model) == (
        "ocr",
        attachment.owner_key,
        2,
        "standin-ocr",
    )


def test_anonymous_owners_get_no_ocr_unless_the_operator_allows_it(anonymous, standin, settings):
    for _ in range(5):
        assert "reading_text" not in upload(anonymous, scan(1))
    ocr.reads_settle_for_testing()
    assert ocr_calls(standin) == 0
    assert set(Attachment.objects.values_list("text_reading", "text")) == {("skipped", "")}
    assert not UsageEntry.objects.exists()

    settings.CHAT_ANONYMOUS_OCR = True
    upload(anonymous, scan(1, width=300))
    ocr.reads_settle_for_testing()
    assert ocr_calls(standin) == 1


def test_the_same_bytes_are_read_once_per_owner(signed_in, standin):
    data = scan(2)
    first = upload(signed_in, data)
    second = upload(signed_in, data)  # while the first read may still be in flight
    ocr.reads_settle_for_testing()
    third = upload(signed_in, data)  # after it: the text at once
    assert "reading_text" not in third
    assert ocr_calls(standin) == 1
    ids = [first["id"], second["id"], third["id"]]
    assert set(Attachment.objects.filter(pk__in=ids).values_list("text", "text_reading")) == {
        ("Page 1 read by OCR.\n\nPage 2 read by OCR.", "read")
    }
    assert UsageEntry.objects.get().pages == 2


def test_an_owner_has_at_most_the_days_pages_read(signed_in, standin, settings):
    settings.CHAT_OCR_PAGES_PER_DAY = 3
    upload(signed_in, scan(2, width=210))
    ocr.reads_settle_for_testing()
    over = upload(signed_in, scan(2, width=220))  # 2 + 2 > 3
    assert "reading_text" not in over
    assert Attachment.objects.get(pk=over["id"]).text_reading == "skipped"
    upload(signed_in, scan(1, width=230))  # 2 + 1 fits
    ocr.reads_settle_for_testing()
    assert ocr_calls(standin) == 2
    assert sum(UsageEntry.objects.values_list("pages", flat=True)) == 3


def test_a_scan_beyond_the_reads_at_once_and_waiting_is_kept_without_text(signed_in, standin, settings):
    settings.CHAT_OCR_CONCURRENCY, settings.CHAT_OCR_QUEUE = 1, 0
    readers = ocr._readers_get()
    assert readers.slots.acquire(blocking=False)  # the one read this process may have is under way
    try:
        busy = upload(signed_in, scan(1, width=240))
    finally:
        readers.slots.release()
    assert Attachment.objects.get(pk=busy["id"]).text_reading == "skipped"
    upload(signed_in, scan(1, width=250))  # room again
    ocr.reads_settle_for_testing()
    assert ocr_calls(standin) == 1


def test_without_the_ocr_a_scan_is_kept_without_text(signed_in, settings):
    settings.DEDALUS_BASE_URL = "http://127.0.0.1:9"  # nothing listens: the OCR fails, the upload does not
    upload(signed_in, scan(1))
    ocr.reads_settle_for_testing()
    assert list(Attachment.objects.values_list("text", "text_reading")) == [("", "failed")]
    assert not UsageEntry.objects.exists()


@pytest.fixture
def ocr_answering_surrogates(settings) -> Iterator[str]:
    """An API whose OCR reads a lone surrogate (JSON's "\\ud800" escape), over real HTTP."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"model": "ocr", "pages": [{"index": 0, "markdown": "scan \ud800 text\x00"}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.DEDALUS_BASE_URL = f"http://127.0.0.1:{server.server_port}"
    yield settings.DEDALUS_BASE_URL
    server.shutdown()
    server.server_close()


def test_a_lone_surrogate_in_ocr_text_is_stored_replaced(signed_in, ocr_answering_surrogates):
    upload(signed_in, scan(1))
    ocr.reads_settle_for_testing()
    assert Attachment.objects.get().text == "scan \ufffd text"
