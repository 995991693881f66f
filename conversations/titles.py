"""A conversation's title: the cleaned first line of its first message, then the model's (asked once,
after the first reply), unless the user renamed it: a title the user wrote is never overwritten."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .models import Conversation, Message

TITLE_LENGTH = 60
# What the model is shown of the conversation: enough to name it, little enough to stay cheap.
TITLE_EXCERPT_CHARS = 1500
TITLE_INSTRUCTIONS = (
    "Write a title for the conversation below: at most six words, in the language of the user's "
    "message. Answer with the title only, without quotes or a final period."
)

# The stand-in's directives (`[[standin tokens=3]]`) steer tests and demos: never part of a title.
DIRECTIVE_RE = re.compile(r"\[\[standin[^\]]*\]\]")
LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")  # [words](url) -> words
LINE_MARKER_RE = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+]\s+|\d+[.)]\s+)+")  # heading, quote, list item
INLINE_MARKER_RE = re.compile(r"\*\*|__|[*`~]|(?<!\w)_|_(?!\w)")
QUOTES = "\"'“”‘’«»`"


@dataclass(frozen=True, slots=True)
class TitleRequest:
    """What the model is asked for a conversation's title."""

    conversation_id: int
    messages: list[dict[str, str]]


def text_without_directives(content: str) -> str:
    return DIRECTIVE_RE.sub(" ", content)


def title_first_line(content: str) -> str:
    """A title from a message: its first line with words, without the stand-in's directives and
    Markdown's markers, whitespace collapsed, cut at a word boundary to TITLE_LENGTH ("" if none)."""
    for line in text_without_directives(content).splitlines():
        line = INLINE_MARKER_RE.sub("", LINE_MARKER_RE.sub("", LINK_RE.sub(r"\1", line)))
        words = " ".join(line.split())
        if words:
            return _cut(words)
    return ""


def title_from_model(answer: str) -> str:
    """The title in a model's answer: its first line, cleaned as a first line is, without the quotes,
    the "Title:" label or the final period a model may add ("" if none)."""
    line = title_first_line(answer)
    line = re.sub(r"^title\s*:\s*", "", line, flags=re.IGNORECASE).strip(QUOTES + " ")
    return line.rstrip(".").strip(QUOTES + " ")


def _cut(words: str) -> str:
    if len(words) <= TITLE_LENGTH:
        return words
    cut = words[: TITLE_LENGTH - 1]
    if " " in cut and words[TITLE_LENGTH - 1] != " ":
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + "…"


def title_request_for(*, reply_id: int) -> TitleRequest | None:
    """The title request due after reply `reply_id` completed: when it is its conversation's first reply
    and the title is still the first line (not the model's, not the user's); None otherwise."""
    reply = (
        Message.objects.filter(pk=reply_id, role=Message.Role.ASSISTANT, status=Message.Status.COMPLETE)
        .select_related("conversation", "parent")
        .first()
    )
    if reply is None or reply.conversation.title_source != Conversation.TitleSource.FIRST_LINE:
        return None
    earlier = Message.objects.filter(
        conversation_id=reply.conversation_id, role=Message.Role.ASSISTANT, pk__lt=reply.pk
    )
    if reply.parent is None or earlier.exists():
        return None
    question = " ".join(text_without_directives(reply.parent.content).split())[:TITLE_EXCERPT_CHARS]
    answer = reply.content[:TITLE_EXCERPT_CHARS]
    return TitleRequest(
        conversation_id=reply.conversation_id,
        messages=[
            {"role": "system", "content": TITLE_INSTRUCTIONS},
            {"role": "user", "content": f"User: {question}\n\nAssistant: {answer}"},
        ],
    )


def conversation_title_write(*, conversation_id: int, title: str) -> bool:
    """Store the model's title, unless the user renamed the conversation meanwhile (or the model's was
    already stored); True if it was stored."""
    return bool(
        Conversation.objects.filter(
            pk=conversation_id, title_source=Conversation.TitleSource.FIRST_LINE
        ).update(title=title[:200], title_source=Conversation.TitleSource.MODEL)
    )
