"""Attachments on an S3-compatible store (moto in server mode, real HTTP, the real django-storages
backend): uploaded through one instance, served by the other, sent upstream from it, private in the
bucket, and gone with their conversation."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import boto3
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from conversations.attachments.store import attachments_cleanup
from conversations.models import Attachment

from .processes import MotoServer
from .servers import ChatClient, form_headers, page_session_headers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

BUCKET = "chat-attachments"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@pytest.fixture
def moto(log_dir: Path) -> Iterator[MotoServer]:
    server = MotoServer("moto", log_dir).start()
    boto3.client("s3", endpoint_url=server.url, **KEYS).create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture
def s3_instances(instances_started, moto):
    return instances_started(
        CHAT_S3_BUCKET=BUCKET,
        CHAT_S3_ENDPOINT_URL=moto.url,
        CHAT_S3_REGION="us-east-1",
        CHAT_S3_ACCESS_KEY_ID="testing",
        CHAT_S3_SECRET_ACCESS_KEY="testing",
    )


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (24, 16), (0, 160, 90)).save(out, format="PNG")
    return out.getvalue()


async def upload(http: aiohttp.ClientSession, origin: str, name: str, data: bytes) -> dict:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name)
    headers = await form_headers(http, origin)
    async with http.post(f"{origin}/api/attachments/", data=form, headers=headers) as response:
        assert response.status == 201, await response.text()
        return await response.json()


async def test_an_upload_on_one_instance_is_served_and_sent_by_the_other(s3_instances, moto, standin, http):
    a, b = s3_instances
    shown = await upload(http, a.origin, "chart.png", png())

    s3 = boto3.client("s3", endpoint_url=moto.url, **KEYS)
    (stored,) = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert stored["Key"].startswith("attachments/files/")
    assert "chart" not in stored["Key"]
    kept = s3.get_object(Bucket=BUCKET, Key=stored["Key"])["Body"].read()
    grants = s3.get_object_acl(Bucket=BUCKET, Key=stored["Key"])["Grants"]
    assert not [g for g in grants if g["Grantee"].get("URI", "").endswith("AllUsers")]  # never public

    cookie = {"Cookie": (await page_session_headers(http, b.origin))["Cookie"]}
    async with http.get(f"{b.origin}{shown['url']}", headers=cookie) as response:  # the other instance
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/png"
        assert await response.read() == kept
    async with aiohttp.ClientSession() as stranger, stranger.get(f"{b.origin}{shown['url']}") as response:
        assert response.status == 404

    tab = await ChatClient(http, b, "s3chat").connect()
    await tab.send({"message": "what is it?", "attachments": [shown["id"]]})
    frames = await tab.until_end()
    assert frames[-1]["type"] == "done", frames[-1]
    await tab.close()
    image_part = standin.requests()[-1]["body"]["messages"][-1]["content"][1]
    assert base64.b64decode(image_part["image_url"]["url"].split(",", 1)[1]) == kept

    headers = await form_headers(http, a.origin)
    async with http.post(f"{a.origin}/c/s3chat/delete", headers=headers) as response:
        assert response.status == 200, await response.text()
    assert not await Attachment.objects.aexists()
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)  # the file went with its conversation


@pytest.fixture
def stored_on_s3(settings, moto):
    """This process's attachments on the moto bucket, through the same backend and options as production."""
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": moto.url,
                "region_name": "us-east-1",
                "access_key": "testing",
                "secret_key": "testing",
                "location": "attachments",
                "default_acl": None,
                "querystring_auth": True,
                "file_overwrite": False,
            },
        },
    }
    return boto3.client("s3", endpoint_url=moto.url, **KEYS)


def test_the_cleanup_sweeps_the_bucket(stored_on_s3, client):
    client.get("/c/warmup/")
    kept, lost = (
        client.post("/api/attachments/", {"file": SimpleUploadedFile(f"{n}.txt", n.encode())}).json()
        for n in ("kept", "lost")
    )
    s3 = stored_on_s3
    s3.delete_object(Bucket=BUCKET, Key=f"attachments/{Attachment.objects.get(pk=lost['id']).file.name}")
    s3.put_object(Bucket=BUCKET, Key="attachments/files/stray", Body=b"no row names me")

    # Files are a few seconds old here: the grace that spares uploads in progress is waived.
    report = attachments_cleanup(unsent_hours=1, stray_grace=timedelta(0))
    assert report == {"unsent": 0, "rows_without_files": 1, "files_without_rows": 1, "not_deleted": 0}
    assert [str(pk) for pk in Attachment.objects.values_list("pk", flat=True)] == [kept["id"]]
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [f"attachments/{Attachment.objects.get().file.name}"]
