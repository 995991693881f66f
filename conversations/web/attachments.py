"""Attachments over HTTP: the upload (before the message that names it is sent) and the owner-only
download. Another owner, a cookie-less client and a signed-out tab all get the same 404."""

from __future__ import annotations

from typing import NoReturn

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from ..accounts.logins import client_address
from ..attachments import store as attachments
from ..exceptions import AttachmentTooLarge, InvalidAttachment, SessionRequired, UploadLoginRequired
from ..owners import Owner
from .access import conversation_owner_required
from .errors import errors_answered

# Room for the multipart envelope around a file at the size limit (the server's door allows the same).
MULTIPART_OVERHEAD = settings.CHAT_ATTACHMENT_ENVELOPE_BYTES


def _upload_refused(refusal: str) -> NoReturn:
    refused = UploadLoginRequired if refusal == "login_required" else SessionRequired
    raise refused("Attachments need a browser session or a sign-in.")


@require_POST
@errors_answered
@conversation_owner_required(refused=_upload_refused)
def attachment_upload(request: HttpRequest, owner: Owner) -> HttpResponse:
    """`POST /api/attachments/` (multipart, field `file`): 201 with the attachment as its owner sees it,
    or 4xx with `{"code", "message"}` (and Retry-After for a rate or a budget) and nothing stored."""
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.CHAT_ATTACHMENT_MAX_BYTES + MULTIPART_OVERHEAD:  # refused before it is read
        raise AttachmentTooLarge(f"At most {settings.CHAT_ATTACHMENT_MAX_BYTES:,} bytes per file.")
    upload = request.FILES.get("file")
    if upload is None:
        raise InvalidAttachment("Send the file as the `file` field.")
    # attachment_store refuses a file over the size limit, with the rest of its checks
    stored = attachments.attachment_store(
        owner_key=owner.key,
        name=upload.name or "",
        data=upload.read(),
        declared_type=upload.content_type or "",
        anonymous_address="" if owner.is_authenticated else client_address(request) or "",
    )
    return JsonResponse(attachments.attachment_as_dict(stored), status=201)


def _not_found(refusal: str) -> NoReturn:
    raise Http404("No such attachment.")


@require_GET
@conversation_owner_required(refused=_not_found)
def attachment_download(request: HttpRequest, owner: Owner, attachment_id: str) -> HttpResponse:
    """The file, to its owner only: an image we re-encoded is shown inline, anything else downloads."""
    attachment = attachments.attachment_of_owner(owner_key=owner.key, attachment_id=attachment_id)
    if attachment is None:
        raise Http404("No such attachment.")
    response = FileResponse(
        attachment.file.open("rb"),
        content_type=attachment.content_type,
        as_attachment=attachment.content_type not in attachments.INLINE_TYPES,
        filename=attachment.name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"  # no copy outlives the session that fetched it
    return response
