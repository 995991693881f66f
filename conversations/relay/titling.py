"""The model's title for a conversation, asked in the background after its first reply: stored unless
the user renamed the conversation meanwhile, then told to every socket of the conversation, here and (by
an event) on the other instances. Never on a reply's path: `done` has gone out before it starts."""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from .. import protocol, upstream, usage_ledger
from ..chat import titles
from ..exceptions import ChatError
from ..owners import ConversationRef
from ..usage_ledger import TitleStore
from .dbcall import db_call
from .fanout import frame_fan_out
from .instance import Instance, instance_running

logger = logging.getLogger(__name__)

# Seconds between the tries of a title whose conversation's row a turn held (about 1.5 s in all).
TITLE_RETRY_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8)


def title_wanted(*, first_turn: bool) -> bool:
    """Whether a reply that just completed may be followed by a title request (cheap: no query)."""
    return first_turn and bool(settings.CHAT_TITLE_MODEL)


async def title_write(instance: Instance, ref: ConversationRef, *, question: str, answer: str) -> None:
    """Ask the model for the title of a conversation whose first reply (`answer` to `question`) just
    completed, bill it (a usage ledger entry) and store it in one call, and tell the sockets. On any
    failure the title stays the first message's cleaned line."""
    extra = {"session_id": ref.session_id}
    try:
        model = settings.CHAT_TITLE_MODEL
        completion = await upstream.completion_text(
            instance.upstream(),
            model=model,
            messages=titles.title_request(question=question, answer=answer),
            time_limit=settings.CHAT_TITLE_TIMEOUT,
        )
        title = titles.title_from_model(completion.text)
        # One call: the entry and the title's UPDATE together (a hundred first replies ending at once
        # queue a hundred of these on the thread pool the next turns' replies end on).
        stored = await db_call(usage_ledger.title_billed)(
            ref=ref, model=model, usage=completion.usage, title=title
        )
        stored = await _title_retried(ref, title, stored)
    except ChatError as exc:
        logger.info("title not written: the first line stays", extra={**extra, "code": exc.code})
        return
    except Exception:
        logger.exception("title not written: the first line stays", extra=extra)
        return
    if stored is TitleStore.STORED:
        await title_tell(instance, ref, title)


async def _title_retried(ref: ConversationRef, title: str, stored: TitleStore) -> TitleStore:
    """Store a title whose conversation's row a turn held (a batch commits within a few hundred
    milliseconds), again without waiting for it; the last try waits for the row as any update does."""
    for pause in TITLE_RETRY_PAUSES:
        if stored is not TitleStore.ROW_BUSY:
            return stored
        await asyncio.sleep(pause)
        stored = await db_call(usage_ledger.title_store_retry)(
            ref=ref, title=title, row_wait=pause == TITLE_RETRY_PAUSES[-1]
        )
    return stored


async def title_renamed(ref: ConversationRef, title: str) -> None:
    """A rename (from the view, run on the server's event loop): the `title` frame to the conversation's
    sockets, here and on the other instances. A process whose instance has not started has no socket
    to tell, and tells no other instance: their sockets show the new name at their next history."""
    instance = instance_running()
    if instance is not None:
        await title_tell(instance, ref, title)


async def title_tell(instance: Instance, ref: ConversationRef, title: str) -> None:
    """Send the `title` frame to every socket of the conversation, on every instance."""
    await frame_fan_out(instance, ref, protocol.title_frame(title=title))
