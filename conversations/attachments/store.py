"""Attachments: an upload checked (uploads.py), stored through the `attachments` storage and its row, and
what its owner is shown of it. A file's path names neither its owner nor its upload name, and it is only
ever served through the owner's own view."""

from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from ..exceptions import AttachmentTooLarge, InvalidAttachment, UnsupportedAttachment
from ..models import Attachment, ModelChoice, attachment_file_discard, attachments_storage
from ..text import text_storable
from . import limits as upload_limits
from .ocr import scan_read
from .uploads import claim_check
from .workers import checked_in_worker

logger = logging.getLogger(__name__)

NAME_MAX = 255
UPLOAD_FOLDER = "files"  # Attachment.file's upload_to, inside the storage
# Images a browser may show inline; anything else downloads (Content-Disposition: attachment).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_UNSAFE_NAME_RE = re.compile(r'[\x00-\x1f\x7f/\\:"*?<>|]+')
# A file no row names is swept only once older than this: an upload writes its file before its row, and
# its request (decoding, at most CHAT_OCR_TIMEOUT of OCR) ends well within it.
STRAY_FILE_GRACE = timedelta(minutes=15)


def name_clean(name: str) -> str:
    """An upload's name as shown and offered for download: no path, no control or reserved characters."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE_NAME_RE.sub("_", name).strip(" .")
    return name[-NAME_MAX:] or "attachment"


def attachment_store(
    *, owner_key: str, name: str, data: bytes, anonymous_address: str = "", declared_type: str = ""
) -> Attachment:
    """Check an upload and keep it for `owner_key` (attached to no message yet); `anonymous_address` is
    an anonymous owner's client address ("" for a signed-in one), which upload_limits counts against;
    `declared_type` is the content type the client gave the file (held to the content, as its name is).

    Raise AttachmentTooLarge over CHAT_ATTACHMENT_MAX_BYTES, what checked_in_worker raises, and what the
    limits of upload_limits raise (the address's rate and bytes, the owner's quota, the server's budget
    for unsent uploads); nothing is stored then.
    """
    limit = settings.CHAT_ATTACHMENT_MAX_BYTES
    if len(data) > limit:
        raise AttachmentTooLarge(f"That file has {len(data):,} bytes; at most {limit:,} are taken.")
    upload_limits.upload_rate_check(anonymous_address=anonymous_address)  # before any decoding
    checked = checked_in_worker(data)  # decoded in a worker process, holding no database connection
    name = name_clean(name)
    claim_check(checked, name=name, declared_type=declared_type)
    text = checked.text
    # A text read out of a file (a text layer's font maps) passes here, as an OCR's answer passes
    # ocr.py's: no lone surrogate or NUL, which Postgres would refuse at the insert, reaches the row.
    text = text_storable(text)
    attachment = Attachment(
        id=uuid.uuid4(),
        owner_key=owner_key,
        name=name,
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
    scan_read(attachment, checked.data)  # a scan: its text read in the background, within the limits
    return attachment


def attachment_of_owner(*, owner_key: str, attachment_id: str) -> Attachment | None:
    """The owner's attachment of that id; None for anyone else's, a malformed id or one that is gone."""
    try:
        key = uuid.UUID(str(attachment_id))
    except ValueError:
        return None
    return Attachment.objects.filter(pk=key, owner_key=owner_key).first()


def attachment_as_dict(attachment: Attachment) -> dict[str, Any]:
    """What its owner is shown: `{"id", "name", "size", "content_type", "url"}` (`url`: their download),
    and `"reading_text": true` while a scan's text is being read."""
    shown = {
        "id": str(attachment.id),
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "url": reverse("conversations:attachment", kwargs={"attachment_id": attachment.id}),
    }
    if attachment.text_reading == Attachment.TextReading.READING:
        shown["reading_text"] = True
    return shown


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


def attachments_cleanup(
    *, unsent_hours: float, dry_run: bool = False, stray_grace: timedelta = STRAY_FILE_GRACE
) -> dict[str, int]:
    """Remove what no conversation will use, and report it: uploads never sent within `unsent_hours`,
    rows whose file is gone, and files no row names once older than `stray_grace` (a younger one may
    be an upload's whose row is on its way). An upload sent is never touched here: it goes with its
    conversation (deleted by hand or by retention), which refuses while a reply streams.

    A file the storage fails to delete is counted in `not_deleted` and left for the next sweep; the
    sweep goes on. Works the same on the local folder and on S3 (one listing, no request per row)."""
    cutoff = timezone.now() - timedelta(hours=unsent_hours)
    unsent = Attachment.objects.unsent().filter(created_at__lt=cutoff)
    storage = attachments_storage()
    report = {"unsent": unsent.count(), "rows_without_files": 0, "files_without_rows": 0, "not_deleted": 0}
    if not dry_run:
        unsent.delete()  # each row's file goes with it (models.attachments._attachment_file_delete)
    # Rows first, then the listing: a row's file is written before the row, so it is listed if it exists.
    rows = dict(Attachment.objects.values_list("file", "pk"))
    files = _stored_files(storage)
    missing = [pk for name, pk in rows.items() if name not in files]
    report["rows_without_files"] = len(missing)
    if missing and not dry_run:
        Attachment.objects.filter(pk__in=missing).delete()
    settled = timezone.now() - stray_grace
    stray = [name for name in sorted(files - rows.keys()) if _written_before(storage, name, settled)]
    report["files_without_rows"] = len(stray)
    if not dry_run:
        report["not_deleted"] = sum(1 for name in stray if not _file_delete(storage, name))
    return report


def _stored_files(storage: Storage) -> set[str]:
    """The names of the files in the attachments' folder (on S3, its keys under the prefix: a folder is
    only a prefix there, so it is listed, never asked whether it exists)."""
    try:
        _, names = storage.listdir(UPLOAD_FOLDER)
    except FileNotFoundError:  # the local folder, before the first upload
        return set()
    return {f"{UPLOAD_FOLDER}/{name}" for name in names}


def _written_before(storage: Storage, name: str, moment: datetime) -> bool:
    try:
        return storage.get_modified_time(name) < moment
    except Exception:  # gone since the listing, or the storage failed: not swept this time
        logger.warning(
            "attachment file not swept: its time was not read", extra={"file": name}, exc_info=True
        )
        return False


def _file_delete(storage: Storage, name: str) -> bool:
    """Delete a stray file; return False, logged, when the storage fails (the next sweep tries again)."""
    try:
        storage.delete(name)
    except Exception:  # whatever the backend raises (OSError, botocore's errors)
        logger.warning("stray attachment file not deleted", extra={"file": name}, exc_info=True)
        return False
    return True
