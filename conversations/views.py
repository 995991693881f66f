"""The chat page. Conversation content comes over the socket, never through the template."""

import secrets

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from . import selectors


def chat_new(request: HttpRequest) -> HttpResponse:
    """Start a new conversation under a fresh, unguessable id."""
    return redirect("conversations:chat", session_id=secrets.token_urlsafe(16))


def chat_page(request: HttpRequest, session_id: str) -> HttpResponse:
    """The chat page of one conversation."""
    if request.session.session_key is None:
        request.session.save()  # anonymous chats belong to this browser session, so it needs a key
    options = selectors.chat_page_options()
    return render(
        request,
        "conversations/chat.html",
        {
            "session_id": session_id,
            "options": options,
            "standin_notice": settings.CHAT_STANDIN_NOTICE,
            "api_configured": bool(settings.DEDALUS_API_KEY),
        },
    )
