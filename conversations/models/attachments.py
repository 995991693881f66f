"""Files attached to conversations, and the storage that holds their bytes."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import Storage, storages
from django.core.signals import setting_changed
from django.db import models, transaction
from django.db.models.functions import Cast, Substr
from django.dispatch import receiver
from django.utils.functional import LazyObject, empty

logger = logging.getLogger(__name__)


class _AttachmentsStorage(LazyObject):
    """The `attachments` entry of STORAGES, looked up when first used (as Django's default_storage is),
    and again after STORAGES changes (the tests point it at a folder of their own)."""

    def _setup(self) -> None:
        self._wrapped = storages["attachments"]


_ATTACHMENTS_STORAGE = _AttachmentsStorage()


@receiver(setting_changed)
def _attachments_storage_reset_for_testing(*, setting: str, **kwargs: object) -> None:
    """A test's own STORAGES (each test keeps its files apart) makes the storage anew."""
    assert settings.TEST_SUITE
    if setting == "STORAGES":
        _ATTACHMENTS_STORAGE._wrapped = empty


def attachments_storage() -> Storage:
    """Where attachment files live: the local filesystem unless an S3-compatible store is configured."""
    return _ATTACHMENTS_STORAGE  # type: ignore[return-value]


class AttachmentQuerySet(models.QuerySet):
    def unsent(self) -> AttachmentQuerySet:
        """Uploads no message has named yet (attachments_cleanup removes them after a while)."""
        return self.filter(conversation__isnull=True)

    def bytes_stored(self) -> int:
        """What these attachments keep, in bytes: their files and their stored text."""
        total = self.aggregate(total=models.Sum(models.F("size") + models.F("text_bytes")))["total"]
        return total or 0

    def with_owner_name(self) -> AttachmentQuerySet:
        """Each with `owner_name`: its user's name for a `u:` key (one indexed lookup), else None."""
        user_model = get_user_model()
        user_id = Cast(Substr(models.OuterRef("owner_key"), 3), models.BigIntegerField())
        username = user_model.objects.filter(pk=user_id).values(user_model.USERNAME_FIELD)[:1]
        return self.annotate(
            owner_name=models.Case(
                models.When(owner_key__startswith="u:", then=models.Subquery(username)),
                default=None,
                output_field=models.CharField(),
            )
        )


class Attachment(models.Model):
    """A file its owner uploaded, kept as `uploads.py` checked it. It belongs to the conversation of the
    first message that named it (until then, `conversation` is empty) and goes with it; messages name
    their attachments in `Message.attachment_ids` (an edit keeps its turn's). Only its owner reaches it."""

    class Kind(models.TextChoices):
        IMAGE = "image"
        PDF = "pdf"
        TEXT = "text"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_key = models.CharField(max_length=80, db_index=True)
    conversation = models.ForeignKey(
        "Conversation", null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    name = models.CharField(max_length=255, help_text="The file's name as uploaded (shown, never trusted).")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    content_type = models.CharField(max_length=100, help_text="From the file's content, not its name.")
    size = models.PositiveIntegerField(help_text="Bytes kept.")
    file = models.FileField(
        storage=attachments_storage, upload_to="files/", max_length=300
    )  # attachments.UPLOAD_FOLDER
    text = models.TextField(blank=True, help_text="A PDF's text layer, or a text file's text.")
    text_bytes = models.PositiveIntegerField(
        default=0, help_text="The UTF-8 bytes of `text`: stored too, so counted with `size` in the quotas."
    )

    class TextReading(models.TextChoices):
        """Where the OCR of a scanned PDF stands (ocr.py); empty for every other file."""

        READING = "reading"  # its text is on its way
        READ = "read"
        SKIPPED = "skipped"  # not read: its owner may not, is over the day's pages, or the server is busy
        FAILED = "failed"

    text_reading = models.CharField(max_length=10, choices=TextReading.choices, blank=True)
    content_hash = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="SHA-256 of a scan's bytes: one OCR per content."
    )
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AttachmentQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["owner_key", "created_at"], name="attachment_owner_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.size} bytes)"


def attachment_file_discard(name: str) -> None:
    """Delete an attachment's file from the attachments storage. A storage that fails (a folder gone
    read-only, S3 unreachable or refusing) is logged, never raised: the caller's work stands, and the
    file, which no row names now, is left for `attachments_cleanup`'s next sweep."""
    try:
        attachments_storage().delete(name)
    except Exception:  # whatever the backend raises (OSError, botocore's errors): the sweep retries
        logger.warning(
            "attachment file not deleted: left for the next sweep", extra={"file": name}, exc_info=True
        )


@receiver(models.signals.post_delete, sender=Attachment)
def _attachment_file_delete(sender: type[Attachment], instance: Attachment, **kwargs: object) -> None:
    """An attachment's file goes with its row (its conversation deleted, by hand or by retention), once
    the deletion commits: a rolled-back delete keeps both."""
    name = instance.file.name
    if name:
        transaction.on_commit(lambda: attachment_file_discard(name))
