"""Attachments: an upload checked (uploads.py), stored through the `attachments` storage and its row, and
what its owner is shown of it. A file's path names neither its owner nor its upload name, and it is only
ever served through the owner's own view."""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Sum
from django.urls import reverse

from .exceptions import AttachmentQuotaExceeded, AttachmentTooLarge
from .models import Attachment
from .uploads import upload_check

NAME_MAX = 255
# Images a browser may show inline; anything else downloads (Content-Disposition: attachment).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_UNSAFE_NAME_RE = re.compile(r'[\x00-\x1f\x7f/\\:"*?<>|]+')


def name_clean(name: str) -> str:
    """An upload's name as shown and offered for download: no path, no control or reserved characters."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE_NAME_RE.sub("_", name).strip(" .")
    return name[-NAME_MAX:] or "attachment"


def owner_bytes_used(owner_key: str) -> int:
    return Attachment.objects.filter(owner_key=owner_key).aggregate(used=Sum("size"))["used"] or 0


def attachment_store(*, owner_key: str, name: str, data: bytes) -> Attachment:
    """Check an upload and keep it for `owner_key` (attached to no message yet).

    Raise AttachmentTooLarge over CHAT_ATTACHMENT_MAX_BYTES, AttachmentQuotaExceeded when the owner's
    attachments would pass CHAT_ATTACHMENT_QUOTA_BYTES, and what upload_check raises; nothing is stored
    then.
    """
    limit = settings.CHAT_ATTACHMENT_MAX_BYTES
    if len(data) > limit:
        raise AttachmentTooLarge(f"That file has {len(data):,} bytes; at most {limit:,} are taken.")
    checked = upload_check(data)
    if owner_bytes_used(owner_key) + len(checked.data) > settings.CHAT_ATTACHMENT_QUOTA_BYTES:
        raise AttachmentQuotaExceeded()
    attachment = Attachment(
        id=uuid.uuid4(),
        owner_key=owner_key,
        name=name_clean(name),
        kind=checked.kind,
        content_type=checked.content_type,
        size=len(checked.data),
        text=checked.text,
        width=checked.width,
        height=checked.height,
        pages=checked.pages,
    )
    attachment.file.save(str(attachment.id), ContentFile(checked.data), save=False)
    try:
        with transaction.atomic():
            attachment.save(force_insert=True)
    except BaseException:
        attachment.file.storage.delete(attachment.file.name)  # no file without its row
        raise
    return attachment


def attachment_of_owner(*, owner_key: str, attachment_id: str) -> Attachment | None:
    """The owner's attachment of that id; None for anyone else's, a malformed id or one that is gone."""
    try:
        key = uuid.UUID(str(attachment_id))
    except ValueError:
        return None
    return Attachment.objects.filter(pk=key, owner_key=owner_key).first()


def attachment_as_dict(attachment: Attachment) -> dict[str, Any]:
    """What its owner is shown: `{"id", "name", "size", "content_type", "url"}` (`url`: their download)."""
    return {
        "id": str(attachment.id),
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "url": reverse("conversations:attachment", kwargs={"attachment_id": attachment.id}),
    }
