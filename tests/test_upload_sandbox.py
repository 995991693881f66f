"""Untrusted files through the real upload view: what a file's name and content may claim, text that
cannot be stored, and refusals that stay JSON."""

from __future__ import annotations

import pytest
from django.test import Client

from conversations.models import Attachment
from tests.test_attachments import UPLOAD

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
