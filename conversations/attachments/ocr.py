"""The text of a scanned PDF (one without a text layer), read by the API's OCR (`POST /v1/ocr`, through
`upstream.ocr_read`) in the background once its upload has returned: the attachment's `text_reading`
says `reading` until its text is stored, and a turn sent meanwhile gets the file without its text (as it
does when the OCR fails, or without an API key: a model that reads files still gets the file).

Each read is paid with the operator's key, so each is bounded:
- anonymous owners get none unless CHAT_ANONYMOUS_OCR;
- the same bytes are read once per owner: a scan whose content hash the owner had read (or is having
  read) takes that text, with no call (per owner: another's upload never reveals that a file was seen);
- an owner has at most CHAT_OCR_PAGES_PER_DAY pages read per UTC day: the usage ledger's OCR entries and
  the reads in flight, checked under a lock per owner, so concurrent uploads never pass it together;
- at most CHAT_OCR_CONCURRENCY reads run at once in a process, and CHAT_OCR_QUEUE more wait (each holds
  no bytes while it waits: it reads the stored file when it starts); beyond, the scan stays without text.
Every read the API answered appends its usage ledger entry (kind `ocr`, with its pages).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import timedelta

from django.conf import settings
from django.core.signals import setting_changed
from django.db import close_old_connections, connections, transaction
from django.db.models import Max, QuerySet, Sum
from django.dispatch import receiver
from django.utils import timezone

from .. import upstream
from ..exceptions import UpstreamError
from ..models import Attachment, UsageEntry
from ..usage_ledger import call_entry_write
from .limits import advisory_lock, text_bytes

logger = logging.getLogger(__name__)

Reading = Attachment.TextReading
# The advisory lock (Postgres' two-key form, the second a hash of the owner key) under which an owner's
# pages for the day are counted, a read is reserved, and a read's text is stored.
OCR_BUDGET_LOCK = 0x75710003
# A read still `reading` after this long was lost with its process: it neither counts nor is waited for.
READ_STALE_AFTER = timedelta(hours=1)


def _reading(owner_key: str) -> QuerySet[Attachment]:
    """The owner's uploads whose read is in flight (not lost with a stopped process)."""
    return Attachment.objects.filter(
        owner_key=owner_key,
        text_reading=Reading.READING,
        created_at__gte=timezone.now() - READ_STALE_AFTER,
    )


class _Readers:
    """The process's OCR reads: a pool of CHAT_OCR_CONCURRENCY threads, and slots for those running and
    CHAT_OCR_QUEUE waiting (a read takes one before it is queued, or is not queued at all)."""

    def __init__(self) -> None:
        workers = settings.CHAT_OCR_CONCURRENCY
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ocr")
        self.slots = threading.BoundedSemaphore(workers + settings.CHAT_OCR_QUEUE)
        self.pending: set[Future[None]] = set()


_readers: _Readers | None = None
_readers_lock = threading.Lock()


def _readers_get() -> _Readers:
    global _readers
    with _readers_lock:
        if _readers is None:
            _readers = _Readers()
        return _readers


@receiver(setting_changed)
def _readers_reset_for_testing(*, setting: str, **kwargs: object) -> None:
    """New limits make a new pool (the old one finishes what it holds): the tests change them."""
    assert settings.TEST_SUITE
    global _readers
    if setting in ("CHAT_OCR_CONCURRENCY", "CHAT_OCR_QUEUE"):
        with _readers_lock:
            _readers = None


def scan_read(attachment: Attachment, data: bytes) -> None:
    """For an upload just stored: when it is a scan (a PDF without text), its text from the owner's
    earlier read of the same bytes (at once), or a read queued in the background (`reading` until it
    ends), or none (`skipped`, within its owner's rights and the server's room). Updates `attachment`."""
    if attachment.kind != Attachment.Kind.PDF or attachment.text.strip():
        return
    digest = hashlib.sha256(data).hexdigest()
    readers = _readers_get()
    queued = False
    with transaction.atomic():
        advisory_lock(OCR_BUDGET_LOCK, attachment.owner_key)
        state, text = _scan_plan(attachment, digest)
        if state == Reading.READING and text is None:
            queued = readers.slots.acquire(blocking=False)
            state = Reading.READING if queued else Reading.SKIPPED
            if not queued:
                logger.warning("OCR busy: the scan is kept without text", extra={"pages": attachment.pages})
        attachment.content_hash, attachment.text_reading = digest, state
        attachment.text = text or ""
        attachment.text_bytes = text_bytes(attachment.text)
        Attachment.objects.filter(pk=attachment.pk).update(
            content_hash=digest, text_reading=state, text=attachment.text, text_bytes=attachment.text_bytes
        )
        if queued:
            transaction.on_commit(lambda: _read_submit(readers, attachment, digest))


def _scan_plan(attachment: Attachment, digest: str) -> tuple[str, str | None]:
    """What becomes of a scan: (`read`, the text the owner had read of the same bytes); (`reading`, "")
    when such a read is in flight (it fills this one too); (`skipped`, "") when no read may start; else
    (`reading`, None): a read is to start."""
    owner_key = attachment.owner_key
    same = Attachment.objects.filter(owner_key=owner_key, content_hash=digest).exclude(pk=attachment.pk)
    known = same.filter(text_reading=Reading.READ).values_list("text", flat=True).first()
    if known is not None:
        return Reading.READ, known
    if _reading(owner_key).filter(content_hash=digest).exclude(pk=attachment.pk).exists():
        return Reading.READING, ""
    refusal = _read_refusal(owner_key, pages=attachment.pages or 1)
    if refusal:
        logger.info("OCR skipped: the scan is kept without text", extra={"reason": refusal})
        return Reading.SKIPPED, ""
    return Reading.READING, None


def _read_refusal(owner_key: str, *, pages: int) -> str | None:
    """Why the owner may not have `pages` more pages read now, or None."""
    if not settings.DEDALUS_API_KEY:
        return "no_api_key"
    if not owner_key.startswith("u:") and not settings.CHAT_ANONYMOUS_OCR:
        return "anonymous"
    budget = settings.CHAT_OCR_PAGES_PER_DAY
    if budget and ocr_pages_today(owner_key) + pages > budget:
        return "daily_pages"
    return None


def ocr_pages_today(owner_key: str) -> int:
    """Pages the owner had read since midnight UTC (the ledger), and pages of their reads in flight."""
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    read = UsageEntry.objects.filter(
        owner_key=owner_key, kind=UsageEntry.Kind.OCR, created_at__gte=midnight
    ).aggregate(pages=Sum("pages"))["pages"]
    reading = (  # one read per content in flight, however many uploads of it wait
        _reading(owner_key)
        .order_by()
        .values("content_hash")
        .annotate(pages=Max("pages"))
        .values_list("pages", flat=True)
    )
    return (read or 0) + sum(pages or 1 for pages in reading)


def _read_submit(readers: _Readers, attachment: Attachment, digest: str) -> None:
    future = readers.pool.submit(_read, readers, attachment.pk, attachment.owner_key, digest)
    readers.pending.add(future)
    future.add_done_callback(readers.pending.discard)


def _read(readers: _Readers, attachment_id: object, owner_key: str, digest: str) -> None:
    """Read a scan's stored file by OCR and store its text on every upload of the owner's waiting for
    those bytes (`read`), or mark them `failed`; on a worker thread, off every request."""
    close_old_connections()
    try:
        row = Attachment.objects.filter(pk=attachment_id).first()
        answer = _ocr_call(row) if row is not None else None
        reading = Attachment.objects.filter(
            owner_key=owner_key, content_hash=digest, text_reading=Reading.READING
        )
        with transaction.atomic():
            advisory_lock(OCR_BUDGET_LOCK, owner_key)  # an upload of the same bytes sees READ, or is filled
            if answer is None:
                reading.update(text_reading=Reading.FAILED)
                return
            text, model, pages = answer
            reading.update(text=text, text_bytes=text_bytes(text), text_reading=Reading.READ)
            call_entry_write(kind=UsageEntry.Kind.OCR, owner_key=owner_key, model=model, pages=pages)
    except Exception:
        logger.exception("OCR read not stored", extra={"attachment_id": str(attachment_id)})
    finally:
        readers.slots.release()
        connections.close_all()  # this thread's: a pool thread may wait long before its next read


def _ocr_call(row: Attachment) -> upstream.OcrReading | None:
    """The API's reading of a stored scan: (its pages' text as Markdown, in order; the model; the pages
    read), or None when the file or the service failed."""
    try:
        with row.file.open("rb") as stored:
            data = stored.read()
    except Exception:  # the storage failed, or the file is gone
        logger.warning("OCR skipped: the scan's file is unreadable", exc_info=True)
        return None
    try:
        return upstream.ocr_read(data)
    except UpstreamError as exc:
        reason = upstream.sdk_error_name(exc)
        logger.warning("OCR failed; the PDF is kept without text", extra={"reason": reason})
        return None


def reads_settle_for_testing(timeout: float = 30) -> None:
    """Wait for the reads queued so far to end, so that a test sees their results."""
    assert settings.TEST_SUITE
    readers = _readers
    if readers is not None:
        wait(list(readers.pending), timeout=timeout)
