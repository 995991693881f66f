"""What one client may store: uploads and stored bytes per client address for anonymous owners, the
owner's quota counting stored text and holding under concurrent uploads, and a budget for all the
uploads no message has named yet. Every refusal is JSON with a stable code, and nothing is stored."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from conversations.models import Attachment, Conversation

from .redis_keys import limits_forget
from .test_attachments import UPLOAD, stored_files

ADDRESS = "203.0.113.7"


@pytest.fixture(autouse=True)
def upload_limits_clean(settings):
    """Each test counts from zero: the address counters live in Redis (or this process's memory)."""
    limits_forget()
    yield
    limits_forget()


def browser_at(address: str) -> Client:
    """A browser with a fresh session of its own (a new anonymous owner) whose requests come from
    `address` (as Daphne sets REMOTE_ADDR from the proxy's X-Forwarded-For)."""
    client = Client(REMOTE_ADDR=address)
    client.get("/c/warmup/")
    return client


def upload(client: Client, name: str, data: bytes):
    return client.post(UPLOAD, {"file": SimpleUploadedFile(name, data)})


@pytest.mark.django_db
def test_anonymous_uploads_share_a_rate_per_client_address(settings, attachments_stored_apart):
    settings.CHAT_ANONYMOUS_UPLOAD_RATE = "2/minute"
    answers = [upload(browser_at(ADDRESS), f"n{n}.txt", b"notes").status_code for n in range(3)]
    assert answers == [201, 201, 429]  # a new browser session each time: a new owner, the same address

    refused = upload(browser_at(ADDRESS), "again.txt", b"notes")
    assert refused.status_code == 429
    assert refused.json()["code"] == "attachment_rate_limited"
    assert refused.json()["message"]
    assert 0 < int(refused["Retry-After"]) <= 60
    assert Attachment.objects.count() == 2
    assert len(stored_files(attachments_stored_apart)) == 2

    assert upload(browser_at("198.51.100.9"), "elsewhere.txt", b"notes").status_code == 201
    user = get_user_model().objects.create_user("uma", password="pw-for-tests-only")
    signed_in = Client(REMOTE_ADDR=ADDRESS)
    signed_in.force_login(user)
    assert upload(signed_in, "mine.txt", b"notes").status_code == 201  # a user has the owner's limits


@pytest.mark.django_db
def test_anonymous_owners_share_a_byte_allowance_per_client_address(settings, attachments_stored_apart):
    settings.CHAT_ANONYMOUS_UPLOAD_BYTES_PER_DAY = 3000
    data = b"x" * 1000  # 2,000 bytes stored: the file and its text
    assert upload(browser_at(ADDRESS), "a.txt", data).status_code == 201
    refused = upload(browser_at(ADDRESS), "b.txt", data)  # another session, the same address
    assert refused.status_code == 429
    assert refused.json()["code"] == "attachment_rate_limited"
    assert int(refused["Retry-After"]) > 0
    assert Attachment.objects.count() == 1
    assert len(stored_files(attachments_stored_apart)) == 1
    assert upload(browser_at("198.51.100.9"), "c.txt", data).status_code == 201


@pytest.mark.django_db
def test_a_text_files_stored_text_counts_in_the_quota(settings, attachments_stored_apart):
    settings.CHAT_ATTACHMENT_QUOTA_BYTES = 300
    browser = browser_at(ADDRESS)
    assert upload(browser, "one.txt", b"a" * 100).status_code == 201  # 100 bytes of file, 100 of text
    refused = upload(browser, "two.txt", b"b" * 100)
    assert (refused.status_code, refused.json()["code"]) == (413, "attachment_quota_exceeded")
    assert Attachment.objects.get().text_bytes == 100
    assert len(stored_files(attachments_stored_apart)) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_of_one_owner_never_pass_the_quota(settings, attachments_stored_apart):
    settings.CHAT_ATTACHMENT_QUOTA_BYTES = 3 * 2 * 1000  # room for three files of 1,000 bytes and their text
    browser = browser_at(ADDRESS)
    cookies = browser.cookies
    start = threading.Barrier(10)

    def one_upload(n: int) -> int:
        tab = Client(REMOTE_ADDR=ADDRESS)
        tab.cookies = cookies  # the same browser session: one owner
        start.wait()
        return upload(tab, f"part{n}.txt", bytes([97 + n]) * 1000).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(one_upload, range(10)))
    assert sorted(answers) == [201] * 3 + [413] * 7
    rows = list(Attachment.objects.all())
    assert sum(row.size + row.text_bytes for row in rows) <= settings.CHAT_ATTACHMENT_QUOTA_BYTES
    assert len(stored_files(attachments_stored_apart)) == len(rows) == 3


@pytest.mark.django_db
def test_uploads_no_message_named_share_a_budget_until_sent_or_swept(settings, attachments_stored_apart):
    settings.CHAT_UNSENT_UPLOADS_MAX_BYTES = 5000
    data = b"x" * 1000  # 2,000 bytes stored with its text
    first = upload(browser_at(ADDRESS), "1.txt", data).json()
    assert upload(browser_at("198.51.100.1"), "2.txt", data).status_code == 201
    full = upload(browser_at("198.51.100.2"), "3.txt", data)  # any owner, any address
    assert (full.status_code, full.json()["code"]) == (503, "attachment_storage_full")
    assert 0 < int(full["Retry-After"]) <= settings.CHAT_ATTACHMENT_UNSENT_HOURS * 3600
    assert Attachment.objects.count() == 2
    assert len(stored_files(attachments_stored_apart)) == 2

    row = Attachment.objects.get(pk=first["id"])  # sent: it belongs to its conversation now
    row.conversation = Conversation.objects.create(owner_key=row.owner_key, session_id="sent")
    row.save()
    assert upload(browser_at("198.51.100.2"), "3.txt", data).status_code == 201


def test_unsent_uploads_live_an_hour_by_default():
    from chatproject import settings as project_settings

    assert project_settings.CHAT_ATTACHMENT_UNSENT_HOURS == 1
