"""Uploads through the real view: what is kept of each kind of file, every refusal (nothing stored), and
the owner-only download."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pypdf
import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from conversations.models import Attachment, Conversation
from tests import upload_bombs

pytestmark = pytest.mark.django_db

UPLOAD = "/api/attachments/"


def png_with_metadata(size: tuple[int, int] = (40, 30)) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    info = PngInfo()
    info.add_text("Comment", "secret-png-comment")
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def jpeg_with_exif() -> bytes:
    image = Image.new("RGB", (64, 48), (10, 120, 200))
    exif = Image.Exif()
    exif[0x010E] = "secret-exif-description"  # ImageDescription
    exif[0x0112] = 6  # Orientation: rotated 90° clockwise
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def pdf_with_text(text: str) -> bytes:
    """A one-page PDF whose text layer holds `text` (written by hand: pypdf reads it back)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return upload_bombs.pdf_objects(objects)


def pdf_encrypted() -> bytes:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("a-password")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture
def browser(client: Client) -> Client:
    client.get("/c/warmup/")  # the page gives the browser its session
    return client


def upload(client: Client, name: str, data: bytes, content_type: str = "application/octet-stream"):
    return client.post(UPLOAD, {"file": SimpleUploadedFile(name, data, content_type=content_type)})


def stored_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def test_an_image_is_kept_reencoded_without_its_metadata_or_anything_appended(
    browser, attachments_stored_apart
):
    polyglot = png_with_metadata() + b"<script>alert(1)</script>PK\x03\x04zip-payload"
    response = upload(browser, "photo.png", polyglot, "image/png")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "name", "size", "content_type", "url"}
    assert (body["name"], body["content_type"]) == ("photo.png", "image/png")

    (path,) = stored_files(attachments_stored_apart)
    kept = path.read_bytes()
    assert body["size"] == len(kept)
    assert b"secret-png-comment" not in kept
    assert b"<script>" not in kept
    assert b"zip-payload" not in kept
    assert Image.open(io.BytesIO(kept)).size == (40, 30)
    assert str(Attachment.objects.get().id) not in path.parent.name  # no owner or name in the path
    assert "photo" not in path.name

    download = browser.get(body["url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "image/png"
    assert download["X-Content-Type-Options"] == "nosniff"
    assert download["Content-Disposition"].startswith("inline")
    assert b"".join(download.streaming_content) == kept


def test_a_jpeg_is_turned_upright_and_loses_its_exif(browser, attachments_stored_apart):
    response = upload(browser, "camera.jpg", jpeg_with_exif(), "image/jpeg")
    assert response.status_code == 201, response.content
    (path,) = stored_files(attachments_stored_apart)
    kept = Image.open(path)
    assert kept.format == "JPEG"
    assert kept.size == (48, 64)  # rotated by its orientation tag, which is then gone
    assert not kept.getexif()
    assert b"secret-exif-description" not in path.read_bytes()


def test_a_pdf_is_kept_with_its_text_and_downloads_as_an_attachment(browser):
    response = upload(browser, "report.pdf", pdf_with_text("Quarterly numbers rose"), "application/pdf")
    assert response.status_code == 201, response.content
    attachment = Attachment.objects.get()
    assert (attachment.kind, attachment.pages) == ("pdf", 1)
    assert "Quarterly numbers rose" in attachment.text
    download = browser.get(response.json()["url"])
    assert download["Content-Disposition"].startswith('attachment; filename="report.pdf"')


def test_a_code_file_is_kept_as_text_whatever_the_browser_calls_it(browser):
    source = "def hello():\n    return 'héllo'\n".encode()
    response = upload(browser, "hello.py", source, "application/x-msdownload")
    assert response.status_code == 201
    assert response.json()["content_type"] == "text/plain; charset=utf-8"
    attachment = Attachment.objects.get()
    assert (attachment.kind, attachment.text) == ("text", source.decode())
    assert browser.get(response.json()["url"])["Content-Disposition"].startswith("attachment")


BOMB = Image.new("1", (12_000, 12_000))


def bomb_png() -> bytes:
    out = io.BytesIO()
    BOMB.save(out, format="PNG")  # 144 million pixels in a few kilobytes
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("cat.png", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\xff\xff" * 20, 415, "attachment_type_unsupported"),
        ("notes.txt", "café".encode("latin-1") + b"\xff\xfe", 415, "attachment_type_unsupported"),
        ("zeros.txt", b"text\x00with a NUL", 415, "attachment_type_unsupported"),
        ("bomb.png", None, 422, "attachment_unreadable"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R", 422, "attachment_unreadable"),
        ("locked.pdf", None, 422, "attachment_unreadable"),
        ("cut.png", png_with_metadata()[:60], 422, "attachment_unreadable"),
    ],
)
def test_a_file_that_is_refused_is_not_stored(browser, attachments_stored_apart, name, data, status, code):
    data = {"bomb.png": bomb_png, "locked.pdf": pdf_encrypted}.get(name, lambda: data)()
    response = upload(browser, name, data)
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert response.json()["message"]
    assert not Attachment.objects.exists()
    assert stored_files(attachments_stored_apart) == []


def test_too_large_too_many_pages_and_over_the_quota_are_refused(browser, settings, attachments_stored_apart):
    settings.CHAT_ATTACHMENT_MAX_BYTES = 1000
    response = upload(browser, "big.txt", b"x" * 1001)
    assert (response.status_code, response.json()["code"]) == (413, "attachment_too_large")

    settings.CHAT_ATTACHMENT_MAX_BYTES = 10_000_000
    settings.CHAT_ATTACHMENT_MAX_PDF_PAGES = 0
    response = upload(browser, "long.pdf", pdf_with_text("page"))
    assert (response.status_code, response.json()["code"]) == (422, "attachment_unreadable")

    settings.CHAT_ATTACHMENT_MAX_PDF_PAGES = 100
    settings.CHAT_ATTACHMENT_QUOTA_BYTES = 300  # a text file counts twice: its file and its stored text
    assert upload(browser, "one.txt", b"a" * 100).status_code == 201
    response = upload(browser, "two.txt", b"b" * 100)
    assert (response.status_code, response.json()["code"]) == (413, "attachment_quota_exceeded")
    assert Attachment.objects.count() == 1
    assert len(stored_files(attachments_stored_apart)) == 1


def test_only_the_owner_downloads_and_a_cookie_less_client_cannot_upload(browser, django_user_model):
    url = upload(browser, "mine.txt", b"my notes").json()["url"]
    assert browser.get(url).status_code == 200

    other = Client()
    other.get("/c/elsewhere/")
    assert other.get(url).status_code == 404  # another browser session
    assert Client().get(url).status_code == 404  # a cookie-less client
    user = get_user_model().objects.create_user("ivy", password="pw-for-tests-only")
    signed_in = Client()
    signed_in.force_login(user)
    assert signed_in.get(url).status_code == 404  # another owner
    signed_in.logout()
    assert signed_in.get(url).status_code == 404  # a signed-out tab
    assert browser.get(UPLOAD + "00000000-0000-0000-0000-000000000000/").status_code == 404

    refused = Client().post(UPLOAD, {"file": SimpleUploadedFile("a.txt", b"hi")})
    assert refused.status_code == 403
    assert json.loads(refused.content)["code"] == "session_required"


def test_a_download_is_never_kept_in_a_cache(browser):
    """After a sign-out on a shared computer, its browser must have no copy to show the next person."""
    url = upload(browser, "private.txt", b"my notes").json()["url"]
    download = browser.get(url)
    assert download.status_code == 200
    directives = {part.strip() for part in download["Cache-Control"].split(",")}
    assert {"private", "no-store"} <= directives
    assert not any(part.startswith("max-age") and part != "max-age=0" for part in directives)


def test_uploads_keep_csrf():
    client = Client(enforce_csrf_checks=True)
    client.get("/c/warmup/")
    response = client.post(UPLOAD, {"file": SimpleUploadedFile("a.txt", b"hi")})
    assert response.status_code == 403
    assert not Attachment.objects.exists()


def test_signing_in_takes_the_browsers_uploads_along(browser):
    url = upload(browser, "before-login.txt", b"mine before I signed in").json()["url"]
    get_user_model().objects.create_user("jo", password="pw-for-tests-only")
    response = browser.post("/accounts/login/", {"username": "jo", "password": "pw-for-tests-only"})
    assert response.status_code == 302
    assert browser.get(url).status_code == 200
    assert Attachment.objects.get().owner_key.startswith("u:")


def test_the_cleanup_removes_unsent_uploads_rows_without_files_and_files_without_rows(
    browser, attachments_stored_apart
):
    from datetime import timedelta

    from django.utils import timezone

    old, fresh, lost = (
        upload(browser, f"{name}.txt", name.encode()).json() for name in ("old", "fresh", "lost")
    )
    Attachment.objects.filter(pk=old["id"]).update(created_at=timezone.now() - timedelta(hours=30))
    old_file = attachments_stored_apart / Attachment.objects.get(pk=old["id"]).file.name
    os.utime(old_file, (time.time() - 30 * 3600, time.time() - 30 * 3600))
    lost_row = Attachment.objects.get(pk=lost["id"])
    (attachments_stored_apart / lost_row.file.name).unlink()  # its file vanished
    stray = attachments_stored_apart / "files" / "stray-file"
    stray.write_bytes(b"no row names me")
    os.utime(stray, (time.time() - 3600, time.time() - 3600))  # long past any upload still in progress

    out = io.StringIO()
    call_command("attachments_cleanup", "--dry-run", stdout=out)
    assert (
        "would remove 1 upload(s) never sent in 1 h, 1 row(s) without a file, 1 file(s) without a row"
        in out.getvalue()
    )
    assert Attachment.objects.count() == 3

    out = io.StringIO()
    call_command("attachments_cleanup", stdout=out)
    assert "removed 1 upload(s)" in out.getvalue()
    assert list(Attachment.objects.values_list("name", flat=True)) == ["fresh.txt"]
    files = sorted(path.name for path in stored_files(attachments_stored_apart))
    assert files == [Attachment.objects.get().file.name.rsplit("/", 1)[1]]


def test_the_cleanup_leaves_the_file_of_an_upload_still_in_progress(browser, attachments_stored_apart):
    upload(browser, "sent.txt", b"kept")
    # An upload writes its file, then its row: between the two, the file is named by no row yet.
    in_progress = attachments_stored_apart / "files" / "0b9f4a1e-upload-in-progress"
    in_progress.write_bytes(b"its row is on its way")
    out = io.StringIO()
    call_command("attachments_cleanup", stdout=out)
    assert "0 file(s) without a row" in out.getvalue()
    assert in_progress.exists()
    assert len(stored_files(attachments_stored_apart)) == 2


class DeleteFailingStorage(FileSystemStorage):
    """The local storage, whose deletes fail while `failing` is set (a folder gone read-only, a store
    that refuses): what a storage outage looks like to the code that deletes files."""

    failing = False

    def delete(self, name: str) -> None:
        if self.failing:
            raise PermissionError(f"storage unavailable: {name} not deleted")
        super().delete(name)


@pytest.fixture
def deletes_can_fail(settings, tmp_path):
    root = tmp_path / "attachments"
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": f"{__name__}.DeleteFailingStorage",
            "OPTIONS": {"location": str(root), "base_url": None},
        },
    }
    yield root
    DeleteFailingStorage.failing = False


@pytest.mark.django_db(transaction=True)  # the file's delete runs on commit, for real
def test_a_storage_that_fails_a_delete_breaks_nothing_and_the_next_sweep_removes_the_file(
    browser, deletes_can_fail
):
    upload(browser, "notes.txt", b"my notes")
    row = Attachment.objects.get()
    row.conversation = Conversation.objects.create(owner_key=row.owner_key, session_id="gone")
    row.save()
    (path,) = stored_files(deletes_can_fail)

    DeleteFailingStorage.failing = True
    response = browser.post("/c/gone/delete")
    assert response.status_code == 200, response.content  # the conversation is deleted all the same
    assert not Attachment.objects.exists()
    assert path.exists()  # its file is left for the sweep
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    out = io.StringIO()
    call_command("attachments_cleanup", stdout=out)  # the sweep goes on past a file it cannot delete
    assert "1 file(s) without a row (1 not deleted: the storage failed)" in out.getvalue()
    assert path.exists()

    DeleteFailingStorage.failing = False
    out = io.StringIO()
    call_command("attachments_cleanup", stdout=out)
    assert "1 file(s) without a row" in out.getvalue()
    assert "not deleted" not in out.getvalue()
    assert stored_files(deletes_can_fail) == []


def test_the_markdown_export_names_the_attachments(browser):
    from conversations.models import Message

    attachment = upload(browser, "notes.txt", b"my notes").json()
    owner_key = Attachment.objects.get().owner_key
    conversation = Conversation.objects.create(owner_key=owner_key, session_id="exp1", title="With files")
    Message.objects.create(
        conversation=conversation, role="user", content="see attached", attachment_ids=[attachment["id"]]
    )
    markdown = browser.get("/c/exp1/export.md").content.decode()
    assert "_Attached: notes.txt_" in markdown
    exported = browser.get("/c/exp1/export.json").json()
    assert exported["messages"][0]["attachments"] == [attachment]
