"""The requester's conversations over HTTP: the sidebar's list and search, rename, pin and delete, and the
export. Another owner's conversation answers exactly as a missing one: 404."""

from __future__ import annotations

import json
import re
from typing import NoReturn

from asgiref.sync import async_to_sync
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_POST

from ..chat import selectors, upkeep
from ..exceptions import InvalidOffset, InvalidPin, InvalidSource, NotFound
from ..models import Conversation
from ..owners import ConversationRef, Owner
from ..relay.titling import title_renamed
from ..text import text_storable
from .access import conversation_owner_required, not_found, owner_missing
from .errors import errors_answered

# Conversations per page of the sidebar's list.
CONVERSATIONS_PAGE = 30
# The largest `offset` the list accepts: far past any real list, far below Postgres's bigint OFFSET limit.
CONVERSATIONS_MAX_OFFSET = 100_000_000
# Search texts are cut to this many characters.
SEARCH_MAX_CHARS = 200


# An empty list would pretend the public namespace were a cookie-less client's own, and empty.
_list_refused = owner_missing(
    sign_in="Sign in to see your conversations.",
    session_only="Conversations are listed for a signed-in user or a browser session.",
)


def _list_offset(raw: str) -> int:
    """Return the list offset `raw` names; raise InvalidOffset unless it is a whole number from 0 to the
    maximum."""
    # Checked as text first: int() of thousands of digits is slow, then refused.
    if raw.isascii() and raw.isdigit() and len(raw) <= len(str(CONVERSATIONS_MAX_OFFSET)):
        offset = int(raw)
        if offset <= CONVERSATIONS_MAX_OFFSET:
            return offset
    raise InvalidOffset(f"offset must be a whole number from 0 to {CONVERSATIONS_MAX_OFFSET}.")


@errors_answered
@conversation_owner_required(refused=_list_refused)
def conversation_list(request: HttpRequest, owner: Owner) -> JsonResponse:
    """The requester's conversations, newest first; `?q=` searches titles and messages, `?offset=` pages,
    `?source=api` (or `page`) keeps those of the OpenAI-compatible API (or the page)."""
    offset = _list_offset(request.GET.get("offset", "0"))
    source = request.GET.get("source", "")
    if source and source not in Conversation.Source.values:
        raise InvalidSource(f"source is one of {', '.join(Conversation.Source.values)}.")
    # One more than a page is read, to tell whether another page follows.
    items = selectors.conversations_of_owner(
        owner_key=owner.key,
        query=text_storable(request.GET.get("q", "")).strip()[:SEARCH_MAX_CHARS],
        limit=CONVERSATIONS_PAGE + 1,
        offset=offset,
        source=source,
    )
    return JsonResponse(
        {
            "conversations": items[:CONVERSATIONS_PAGE],
            "offset": offset,
            "has_more": len(items) > CONVERSATIONS_PAGE,
        }
    )


@require_POST
@errors_answered
@conversation_owner_required(refused=not_found)
def conversation_rename(request: HttpRequest, owner: Owner, session_id: str) -> HttpResponse:
    """Rename one of the requester's conversations (form field `title`); its open sockets hear of it."""
    title = upkeep.conversation_rename(
        owner_key=owner.key,
        session_id=session_id,
        title=request.POST.get("title", ""),
    )
    if title is None:
        raise NotFound()
    async_to_sync(title_renamed)(ConversationRef(owner.key, session_id), title)
    return JsonResponse({"ok": True})


@require_POST
@errors_answered
@conversation_owner_required(refused=not_found)
def conversation_pin(request: HttpRequest, owner: Owner, session_id: str) -> HttpResponse:
    """Pin one of the requester's conversations to the top of their list, or unpin it: JSON
    `{"pinned": true | false}`. Answer `{"pinned"}`, or 404 for anyone else's conversation."""
    try:
        pinned = json.loads(request.body or b"null").get("pinned")
    except (ValueError, AttributeError):
        pinned = None
    if not isinstance(pinned, bool):
        raise InvalidPin()
    if not upkeep.conversation_pin(owner_key=owner.key, session_id=session_id, pinned=pinned):
        raise NotFound()
    return JsonResponse({"pinned": pinned})


@require_POST
@errors_answered
@conversation_owner_required(refused=not_found)
def conversation_delete(request: HttpRequest, owner: Owner, session_id: str) -> HttpResponse:
    """Delete one of the requester's conversations (refused while a reply streams: 409 `busy`)."""
    if not upkeep.conversation_delete(owner_key=owner.key, session_id=session_id):
        raise NotFound()
    return JsonResponse({"ok": True})


def _export_not_found(refusal: str) -> NoReturn:
    """Raise the 404 page of a missing conversation (whatever the refusal: it must not tell them apart)."""
    raise Http404("No such conversation.")


@conversation_owner_required(refused=_export_not_found)
def conversation_export(request: HttpRequest, owner: Owner, session_id: str, fmt: str) -> HttpResponse:
    """Download one of the requester's conversations as Markdown or JSON; 404 for anyone else."""
    export = selectors.conversation_export(owner_key=owner.key, session_id=session_id)
    if export is None:
        _export_not_found("not_found")
    if fmt == "json":
        response: HttpResponse = JsonResponse(export, json_dumps_params={"indent": 2, "ensure_ascii": False})
    else:
        markdown = selectors.conversation_as_markdown(export, selectors.model_labels())
        response = HttpResponse(markdown, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=f"{export_file_stem(export['title']) or f'chat-{session_id}'}.{fmt}"
    )
    return response


# What a file name cannot hold on some system (separators, Windows' reserved characters, control
# characters), each run of them one hyphen.
_UNSAFE_IN_FILE_NAMES = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f-]+')


def export_file_stem(title: str) -> str:
    """A conversation's title as a download's file name (without the extension): what no system refuses,
    never hidden (no leading dot), at most 100 characters; "" when nothing is left."""
    return " ".join(_UNSAFE_IN_FILE_NAMES.sub("-", title).split())[:100].strip(" .-")
