"""A conversation as a whole, outside its turns: its active branch, its title, its owner after a
sign-in, and its deletion (by its owner, or by retention).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from ..exceptions import Busy, InvalidMessage, NoSuchMessage
from ..models import Attachment, Conversation, Message
from ..owners import ConversationRef, Owner
from ..text import text_storable
from .selectors import thread_state
from .threads import thread_newest_leaf
from .turns import streaming_reply_refuse


@transaction.atomic
def branch_switch(*, ref: ConversationRef, message_id: int) -> None:
    """Make the branch through `message_id` active: its newest leaf (the newest child at every step)
    becomes the conversation's current message.

    Raise ChatError `invalid_message` when the message is not in the owner's conversation, and `busy`
    while a reply streams (a streaming reply is always the active leaf, and stays so).
    """
    conversation = (
        Conversation.objects.select_for_update()
        .filter(owner_key=ref.owner_key, session_id=ref.session_id)
        .first()
    )
    thread = thread_state(conversation_id=conversation.pk) if conversation is not None else None
    if conversation is None or thread is None or message_id not in dict(thread.pairs):
        raise NoSuchMessage()
    streaming_reply_refuse(thread)
    conversation.current_message_id = thread_newest_leaf(thread.pairs, message_id)
    conversation.save(update_fields=["current_message"])


@transaction.atomic
def conversations_claim(*, session_owner: str, user_id: int) -> int:
    """Give a user the conversations of the anonymous browser session they just signed in from.

    `session_owner` is that session's owner key (`s:<digest>`). A conversation whose id the user
    already has elsewhere stays with the session (ids are random, so this is a near-impossible
    collision). Return how many moved.
    """
    user_key = Owner(user_id=user_id).key
    taken = Conversation.objects.filter(owner_key=user_key).values_list("session_id", flat=True)
    with transaction.atomic():
        moved = (
            Conversation.objects.filter(owner_key=session_owner)
            .exclude(session_id__in=list(taken))
            .update(owner_key=user_key, user_id=user_id, owner_session_key="")
        )
        # Their attachments, and uploads not sent yet, go with them: the user still sees their files.
        Attachment.objects.filter(owner_key=session_owner).exclude(
            conversation__owner_key=session_owner
        ).update(owner_key=user_key)
    return moved


def conversations_purge(*, older_than_days: int, batch_size: int = 500, dry_run: bool = False) -> int:
    """Delete conversations untouched for `older_than_days`, with their messages, in batches.

    Safe while the server serves: each batch is its own short transaction, and a conversation with a
    reply streaming right now is kept. Return how many were (or, with dry_run, would be) deleted.

    Each batch locks its conversation rows, as a turn does (`turns._conversations_locked`), skipping rows a
    turn holds: a turn in progress keeps its conversation, and one that starts after the lock waits for the
    batch and then creates the conversation afresh.
    """
    cutoff = timezone.now() - timedelta(days=older_than_days)
    old = Conversation.objects.filter(updated_at__lt=cutoff).exclude(
        messages__status=Message.Status.STREAMING
    )
    if dry_run:
        return old.count()
    deleted = 0
    while True:
        with transaction.atomic():
            locked = old.select_for_update(skip_locked=True, of=("self",)).order_by("pk")
            ids = list(locked.values_list("pk", flat=True)[:batch_size])
            if not ids:
                return deleted
            # Asked again under the locks: a turn that committed after the query above began (its
            # messages were invisible to it) has made its conversation recent or busy.
            ids = list(old.filter(pk__in=ids).values_list("pk", flat=True))
            Message.objects.filter(conversation_id__in=ids).delete()
            Conversation.objects.filter(pk__in=ids).delete()
        deleted += len(ids)


def conversation_rename(*, owner_key: str, session_id: str, title: str) -> str | None:
    """Retitle the owner's conversation (trimmed, at most 200 characters), for good: the model's title
    never replaces it. Return the title stored, None if they have no such conversation."""
    title = " ".join(text_storable(title).split())[:200]
    if not title:
        raise InvalidMessage("A title cannot be empty.")
    renamed = Conversation.objects.filter(owner_key=owner_key, session_id=session_id)
    return title if renamed.update(title=title, title_source=Conversation.TitleSource.USER) else None


def conversation_pin(*, owner_key: str, session_id: str, pinned: bool) -> bool:
    """Pin the owner's conversation to the top of their list (pinned again, it keeps its place among the
    pinned), or unpin it; False if they have none. Its last activity is left as it was."""
    conversations = Conversation.objects.filter(owner_key=owner_key, session_id=session_id)
    if pinned:
        return bool(conversations.filter(pinned_at__isnull=True).update(pinned_at=timezone.now())) or (
            conversations.exists()
        )
    return bool(conversations.update(pinned_at=None))


@transaction.atomic
def conversation_delete(*, owner_key: str, session_id: str) -> bool:
    """Delete the owner's conversation, its messages and its share link (which then answers 404); refuse
    while a reply streams. False if none."""
    conversation = (
        Conversation.objects.select_for_update().filter(owner_key=owner_key, session_id=session_id).first()
    )
    if conversation is None:
        return False
    if Message.objects.streaming().filter(conversation=conversation).exists():
        raise Busy("A reply is still being written in this conversation; stop it first.")
    conversation.delete()
    return True
