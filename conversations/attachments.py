"""Attachments: an upload checked (uploads.py), stored through the `attachments` storage and its row, and
what its owner is shown of it. A file's path names neither its owner nor its upload name, and it is only
ever served through the owner's own view."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from . import upload_limits
from .exceptions import AttachmentTooLarge, InvalidAttachment, UnsupportedAttachment
from .models import Attachment, ModelChoice, attachment_file_discard
from .ocr import pdf_text_by_ocr
from .uploads import upload_check

NAME_MAX = 255
UPLOAD_FOLDER = "files"  # Attachment.file's upload_to, inside the storage
# Images a browser may show inline; anything else downloads (Content-Disposition: attachment).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_UNSAFE_NAME_RE = re.compile(r'[\x00-\x1f\x7f/\\:"*?<>|]+')


def name_clean(name: str) -> str:
    """An upload's name as shown and offered for download: no path, no control or reserved characters."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE_NAME_RE.sub("_", name).strip(" .")
    return name[-NAME_MAX:] or "attachment"


def attachment_store(*, owner_key: str, name: str, data: bytes, anonymous_address: str = "") -> Attachment:
    """Check an upload and keep it for `owner_key` (attached to no message yet); `anonymous_address` is
    an anonymous owner's client address ("" for a signed-in one), which upload_limits counts against.

    Raise AttachmentTooLarge over CHAT_ATTACHMENT_MAX_BYTES, what upload_check raises, and what the
    limits of upload_limits raise (the address's rate and bytes, the owner's quota, the server's budget
    for unsent uploads); nothing is stored then.
    """
    limit = settings.CHAT_ATTACHMENT_MAX_BYTES
    if len(data) > limit:
        raise AttachmentTooLarge(f"That file has {len(data):,} bytes; at most {limit:,} are taken.")
    upload_limits.upload_rate_check(anonymous_address=anonymous_address)  # before any decoding
    checked = upload_check(data)
    text = checked.text
    if checked.kind == Attachment.Kind.PDF and not text.strip():
        text = pdf_text_by_ocr(checked.data)  # a scan: its text, read once
    attachment = Attachment(
        id=uuid.uuid4(),
        owner_key=owner_key,
        name=name_clean(name),
        kind=checked.kind,
        content_type=checked.content_type,
        size=len(checked.data),
        text=text,
        text_bytes=upload_limits.text_bytes(text),
        width=checked.width,
        height=checked.height,
        pages=checked.pages,
    )
    stored_bytes = attachment.size + attachment.text_bytes
    upload_limits.upload_bytes_check(anonymous_address=anonymous_address, stored_bytes=stored_bytes)
    attachment.file.save(str(attachment.id), ContentFile(checked.data), save=False)
    try:
        with transaction.atomic():
            upload_limits.stored_bytes_reserve(owner_key=owner_key, stored_bytes=stored_bytes)
            attachment.save(force_insert=True)
    except BaseException:
        attachment_file_discard(attachment.file.name)  # no file without its row
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


def attachments_named(ids: set[str]) -> dict[str, Attachment]:
    """The attachments of these ids, by id (one query for a batch of turns)."""
    if not ids:
        return {}
    return {str(row.pk): row for row in Attachment.objects.filter(pk__in=list(ids))}


def attachments_check(
    ids: list[str],
    *,
    rows: dict[str, Attachment],
    owner_key: str,
    conversation_id: int | None,
    readers: list[ModelChoice],
) -> list[Attachment]:
    """The attachments a message names, in order, checked: each one the sender's, and not already part of
    another conversation; an image only for models that read images (`readers`: those that may write the
    reply). Raise InvalidAttachment or UnsupportedAttachment, which store nothing."""
    chosen: list[Attachment] = []
    for attachment_id in ids:
        row = rows.get(attachment_id)
        if row is None or row.owner_key != owner_key:
            raise InvalidAttachment()  # another owner's looks the same as none at all
        if row.conversation_id is not None and row.conversation_id != conversation_id:
            raise InvalidAttachment("That attachment belongs to another conversation; upload it again.")
        chosen.append(row)
    if any(row.kind == Attachment.Kind.IMAGE for row in chosen):
        blind = [choice.name for choice in readers if choice.vision is False]
        if blind:
            raise UnsupportedAttachment(f"{blind[0]} cannot read images; pick a model that can.")
    total = sum(row.size for row in chosen)
    if total > settings.CHAT_ATTACHMENT_MESSAGE_MAX_BYTES:
        raise InvalidAttachment(
            f"A message's attachments may hold {settings.CHAT_ATTACHMENT_MESSAGE_MAX_BYTES:,} bytes in all."
        )
    return chosen


def attachments_bind(conversation_id: int, ids: list[str]) -> None:
    """The attachments a sent message named now belong to its conversation (and go with it)."""
    if ids:
        Attachment.objects.filter(pk__in=ids, conversation__isnull=True).update(
            conversation_id=conversation_id
        )


def attachments_cleanup(*, unsent_hours: float, dry_run: bool = False) -> dict[str, int]:
    """Remove what no conversation will use, and report it: uploads never sent within `unsent_hours`,
    rows whose file is gone, and files no row names. An upload sent is never touched here: it goes with
    its conversation (deleted by hand or by retention), which refuses while a reply streams."""
    cutoff = timezone.now() - timedelta(hours=unsent_hours)
    unsent = Attachment.objects.filter(conversation__isnull=True, created_at__lt=cutoff)
    storage = Attachment._meta.get_field("file").storage
    report = {"unsent": unsent.count(), "rows_without_files": 0, "files_without_rows": 0}
    if not dry_run:
        unsent.delete()  # each row's file goes with it (models._attachment_file_delete)
    missing = [row.pk for row in Attachment.objects.only("pk", "file") if not storage.exists(row.file.name)]
    report["rows_without_files"] = len(missing)
    if missing and not dry_run:
        Attachment.objects.filter(pk__in=missing).delete()
    named = set(Attachment.objects.values_list("file", flat=True))
    _, files = storage.listdir(UPLOAD_FOLDER) if storage.exists(UPLOAD_FOLDER) else ([], [])
    stray = [f"{UPLOAD_FOLDER}/{name}" for name in files if f"{UPLOAD_FOLDER}/{name}" not in named]
    report["files_without_rows"] = len(stray)
    if not dry_run:
        for name in stray:
            storage.delete(name)
    return report
