"""Untrusted files through the real upload view: what a file's name and content may claim, text that
cannot be stored, and refusals that stay JSON."""

from __future__ import annotations

import http.client
import io
import json
import multiprocessing
import threading
import time

import pypdf
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from PIL import Image

from bench.upload_costs import upload as http_upload
from conversations.attachments import workers as upload_workers
from conversations.models import Attachment
from tests import upload_bombs
from tests.test_attachments import UPLOAD, png_with_metadata, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client: Client) -> Client:
    client.get("/c/warmup/")  # the page gives the browser its session
    return client


def multipart_post(client: Client, name: str, data: bytes, **headers: str):
    """POST a multipart body written by hand: the test client's files cut their names to 255 characters."""
    boundary = "sandbox-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.post(UPLOAD, body, content_type=f"multipart/form-data; boundary={boundary}", **headers)


def test_a_file_name_too_long_to_parse_gets_the_json_error(browser):
    response = multipart_post(browser, "a" * 5000 + ".txt", b"some notes")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "invalid_attachment"
    assert response.json()["message"]
    assert not Attachment.objects.exists()

    # The same through the CSRF check, which parses the body before the view does.
    guarded = Client(enforce_csrf_checks=True)
    guarded.get("/c/warmup/")
    token = guarded.cookies["csrftoken"].value
    response = multipart_post(guarded, "a" * 5000 + ".txt", b"some notes", HTTP_X_CSRFTOKEN=token)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_attachment")


def test_a_long_file_name_that_parses_is_kept_shortened(browser):
    response = multipart_post(browser, "b" * 600 + ".txt", b"some notes")
    assert response.status_code == 201, response.content
    assert len(response.json()["name"]) <= 255
    assert response.json()["name"].endswith(".txt")


def pdf_stream(data: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def pdf_with_lone_surrogates() -> bytes:
    """A PDF whose font maps `a` to U+D800 (a lone surrogate) in its ToUnicode map: its text layer reads
    "\\ud800B\\ud800B"."""
    to_unicode = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Odd def\n"
        b"1 begincodespacerange <00> <FF> endcodespacerange\n"
        b"2 beginbfchar <61> <D800> <62> <0042> endbfchar\n"
        b"endcmap CMapName currentdict /CMap defineresource pop end end"
    )
    return upload_bombs.pdf_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            pdf_stream(b"BT /F1 12 Tf 72 720 Td (abab) Tj ET"),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>",
            pdf_stream(to_unicode),
        ]
    )


def test_a_lone_surrogate_in_a_pdfs_text_layer_is_stored_replaced(browser):
    assert "\ud800" in pypdf.PdfReader(io.BytesIO(pdf_with_lone_surrogates())).pages[0].extract_text()
    response = upload(browser, "odd.pdf", pdf_with_lone_surrogates())
    assert response.status_code == 201, response.content
    assert Attachment.objects.get().text == "\ufffdB\ufffdB"


def blank_pdf() -> bytes:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "declared", "data"),
    [
        ("photo.png", "image/png", b"<!doctype html><html><script>alert(1)</script></html>"),
        ("photo", "image/png", b"<html>no extension, the browser's word</html>"),
        ("scan.JPG", "application/octet-stream", b"plain text"),
        ("report.pdf", "application/pdf", b"not a pdf at all"),
        ("report.pdf", "application/pdf", png_with_metadata()),
    ],
)
def test_a_file_whose_name_claims_a_type_its_content_is_not_is_refused(
    browser, attachments_stored_apart, name, declared, data
):
    response = upload(browser, name, data, declared)
    assert response.status_code == 415, response.content
    assert response.json()["code"] == "attachment_type_mismatch"
    assert name in response.json()["message"]
    assert not Attachment.objects.exists()
    assert not [path for path in attachments_stored_apart.rglob("*") if path.is_file()]


@pytest.mark.parametrize(
    ("name", "declared", "data"),
    [
        ("hello.py", "application/x-msdownload", b"print('hi')\n"),
        ("notes.txt", "text/plain", b"notes"),
        ("camera.jpg", "image/jpeg", png_with_metadata()),  # an image is an image, whatever its format
        ("picture", "application/octet-stream", png_with_metadata()),
    ],
)
def test_a_name_that_says_nothing_false_is_kept(browser, name, declared, data):
    response = upload(browser, name, data, declared)
    assert response.status_code == 201, response.content


# Untrusted decoding runs in the upload workers, with budgets and hard limits: each bomb is refused or
# bounded in time, and the server answers meanwhile.

SLACK = 15  # seconds beyond a limit that a refusal may take on a busy machine (worker start, the kill)


@pytest.fixture
def fresh_pool():
    """Upload workers started under this test's settings (and stopped after it, for the next one's)."""
    upload_workers.pool_stop()
    yield
    upload_workers.pool_stop()


def timed_upload(client: Client, name: str, data: bytes):
    started = time.monotonic()
    response = upload(client, name, data)
    return response, time.monotonic() - started


@pytest.mark.parametrize(
    ("name", "build", "words"),
    [
        ("shared.pdf", lambda: upload_bombs.pdf_shared_content_bomb(pages=3), "more work to read"),
        ("form.pdf", upload_bombs.pdf_form_xobject_bomb, "more work to read"),
        ("scans.jpg", lambda: upload_bombs.jpeg_scan_bomb(repeats=200, size=(256, 256)), "scans"),
        ("big.webp", upload_bombs.lossless_pixels_bomb, "pixels"),
        ("big.png", lambda: upload_bombs.lossless_pixels_bomb("PNG"), "pixels"),
    ],
)
def test_each_bomb_is_refused_within_its_budget(browser, attachments_stored_apart, name, build, words):
    response, seconds = timed_upload(browser, name, build())
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "attachment_unreadable"
    assert words in response.json()["message"]
    assert seconds < settings.CHAT_UPLOAD_WORKER_CPU_SECONDS + SLACK
    assert not Attachment.objects.exists()


def test_a_pdf_past_every_budget_is_killed_at_its_cpu_limit(browser, settings):
    settings.CHAT_PDF_MAX_OPERATORS = 10**9
    settings.CHAT_PDF_MAX_FORM_DRAWS = 10**9
    settings.CHAT_UPLOAD_WORKER_CPU_SECONDS = 1
    response, seconds = timed_upload(browser, "form.pdf", upload_bombs.pdf_form_xobject_bomb())
    assert (response.status_code, response.json()["code"]) == (422, "attachment_unreadable")
    assert response.json()["message"] == upload_workers.TOO_COSTLY
    assert seconds < 1 + SLACK
    # The worker it killed is replaced: the next file is read.
    assert upload(browser, "after.txt", b"still reading files").status_code == 201


def test_a_worker_past_its_wall_clock_is_killed(browser, settings):
    settings.CHAT_PDF_MAX_OPERATORS = 10**9
    settings.CHAT_UPLOAD_WORKER_WALL_SECONDS = 0.5
    response, seconds = timed_upload(browser, "form.pdf", upload_bombs.pdf_form_xobject_bomb())
    assert (response.status_code, response.json()["code"]) == (422, "attachment_unreadable")
    assert "too long" in response.json()["message"]
    assert seconds < 0.5 + SLACK


def test_a_worker_past_its_memory_gets_no_more(browser, settings, fresh_pool):
    settings.CHAT_UPLOAD_WORKER_MEMORY_MB = 300
    settings.CHAT_ATTACHMENT_MAX_PIXELS = 100_000_000
    response, _ = timed_upload(browser, "big.webp", upload_bombs.lossless_pixels_bomb(size=(10_000, 8_000)))
    # Pillow's decoder fails its allocation (as a damaged file would), or Python's does: refused either way.
    assert (response.status_code, response.json()["code"]) == (422, "attachment_unreadable")
    assert not Attachment.objects.exists()
    assert upload(browser, "after.txt", b"still reading files").status_code == 201


def test_an_image_is_kept_at_most_max_side_pixels_on_its_longest_side(browser, settings):
    settings.CHAT_ATTACHMENT_MAX_SIDE = 500
    for name, format in (("wide.png", "PNG"), ("wide.jpg", "JPEG"), ("wide.webp", "WEBP")):
        out = io.BytesIO()
        Image.linear_gradient("L").resize((3_000, 1_200)).convert("RGB").save(out, format=format)
        response = upload(browser, name, out.getvalue())
        assert response.status_code == 201, response.content
        kept = Attachment.objects.get(pk=response.json()["id"])
        assert (kept.width, kept.height) == (500, 200), name


def test_a_progressive_jpeg_with_its_scans_counted_is_read(browser):
    out = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").save(out, format="JPEG", progressive=True)
    assert upload(browser, "progressive.jpg", out.getvalue()).status_code == 201


def pg_other_connections() -> int:
    """Connections to the test database other than this thread's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_full_pool_answers_503_at_once_and_decoding_holds_no_database_connection(
    live_server, settings, fresh_pool
):
    settings.CHAT_UPLOAD_WORKERS = 1
    settings.CHAT_UPLOAD_WAIT_SECONDS = 0.3
    settings.CHAT_PDF_MAX_OPERATORS = 10**9
    settings.CHAT_UPLOAD_WORKER_CPU_SECONDS = 4
    port = int(live_server.url.rsplit(":", 1)[1])
    bomb = upload_bombs.pdf_form_xobject_bomb()
    http_upload(port, "warm-up.txt", b"starts the worker", 30, {})
    # Connections other tests' threads left open are not this upload's: count from here.
    before = pg_other_connections()
    slow: dict[str, object] = {}
    busy = threading.Thread(target=http_upload, args=(port, "form.pdf", bomb, 60, slow))
    busy.start()
    time.sleep(1.0)  # the worker is decoding
    assert busy.is_alive()
    assert pg_other_connections() <= before  # the decoding upload gave its connection back

    refused: dict[str, object] = {}
    http_upload(port, "another.pdf", bomb, 30, refused)
    assert busy.is_alive()  # refused while the worker still decodes: no queue behind it
    status, _, body = str(refused["answer"]).partition(" ")
    assert status == "503"
    assert json.loads(body)["code"] == "attachments_busy"
    assert int(str(refused["retry_after"])) > 0

    health = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    health.request("GET", "/healthz")
    assert health.getresponse().status == 200
    assert busy.is_alive()  # the server answers others while a file is decoded
    busy.join(60)
    assert str(slow["answer"]).startswith("422 ")  # killed at its CPU limit


def test_a_jpeg_over_the_pixel_cap_is_decoded_at_a_reduced_scale(browser):
    """40 million pixels: a JPEG is decoded at half scale (10 million), within the cap, and kept at
    CHAT_ATTACHMENT_MAX_SIDE; a lossless image of the same size is refused (test above)."""
    out = io.BytesIO()
    Image.linear_gradient("L").resize((8_000, 5_000)).save(out, format="JPEG")
    response = upload(browser, "camera.jpg", out.getvalue())
    assert response.status_code == 201, response.content
    kept = Attachment.objects.get()
    assert (kept.width, kept.height) == (2048, 1280)


def _decoded_in_a_forked_child(answers) -> None:
    try:
        answers.put(upload_workers.checked_in_worker(b"read in the child").kind)
    except BaseException as exc:  # the parent asserts on what it was
        answers.put(repr(exc))


def test_a_process_forked_after_the_workers_started_starts_its_own(fresh_pool):
    """A test's live server or a forking server is forked from a process whose workers already run:
    its uploads must not wait on the parent's fork server (ECHILD, a broken pool, a 500), and its exit
    must not wait on its own workers."""
    assert upload_workers.checked_in_worker(b"read in the parent").kind == "text"
    fork = multiprocessing.get_context("fork")
    answers = fork.Queue()
    child = fork.Process(target=_decoded_in_a_forked_child, args=(answers,))
    child.start()
    try:
        assert answers.get(timeout=60) == "text"
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0  # its exit stopped its own workers instead of waiting on them forever
