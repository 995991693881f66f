"""The usage ledger's writes: one UsageEntry per billed call, appended when the call ends and never
changed or deleted after (conversations and their replies may go; what they cost stays).

A reply's entry is written by the statement that stores its end, so a reply never ends without one and
never gets two: on PostgreSQL a single statement (the fenced UPDATE's RETURNING feeds the INSERT: no
round trip more than the end itself), elsewhere the same two statements in one transaction. A title's
entry is written by the statement that stores the title (after one read of the conversation and the
model's prices), an OCR read's with one INSERT; both are off the reply's path.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import connections, transaction
from django.db.models import QuerySet
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from .costs import Prices, reply_cost
from .models import ChatModel, Conversation, Message, UsageEntry
from .owners import ConversationRef

_COLUMNS = (
    "kind, owner_key, user_id, conversation_id, message_id, model, agent_slug,"
    " prompt_tokens, completion_tokens, total_tokens, cost, created_at"
)


def _reply_entries_select(source: str) -> str:
    """A reply entry per message row of `source` (aliased m), with its conversation's owner."""
    return (
        f"SELECT '{UsageEntry.Kind.REPLY}', c.owner_key, c.user_id, m.conversation_id, m.id, m.model,"
        " m.agent_slug, m.prompt_tokens, m.completion_tokens, m.total_tokens, m.cost,"
        f" COALESCE(m.finished_at, m.created_at) FROM {source} m"
        f" JOIN {Conversation._meta.db_table} c ON c.id = m.conversation_id"
    )


def reply_end_write(replies: QuerySet[Message], values: dict[str, Any]) -> int:
    """Store `values` (how a reply ended) on the replies `replies` selects and append each one's ledger
    entry, atomically; return how many replies were stored (0: none still matched, nothing written)."""
    connection = connections[replies.db]
    table = UsageEntry._meta.db_table
    if connection.vendor == "postgresql":
        query = replies.query.chain(UpdateQuery)
        query.add_update_values(values)
        update_sql, params = query.get_compiler(replies.db).as_sql()
        sql = (
            f"WITH ended AS ({update_sql} RETURNING *) "
            f"INSERT INTO {table} ({_COLUMNS}) {_reply_entries_select('ended')}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount
    with transaction.atomic(using=replies.db):
        ids = list(replies.select_for_update().values_list("pk", flat=True))
        if ids:
            Message.objects.using(replies.db).filter(pk__in=ids).update(**values)
            reply_entries_write(ids, using=replies.db)
        return len(ids)


def reply_entries_write(message_ids: list[int], *, using: str = "default") -> None:
    """Append the ledger entries of replies that just ended, from their stored rows (one INSERT)."""
    placeholders = ", ".join(["%s"] * len(message_ids))
    sql = (
        f"INSERT INTO {UsageEntry._meta.db_table} ({_COLUMNS}) "
        f"{_reply_entries_select(Message._meta.db_table)} WHERE m.id IN ({placeholders})"
    )
    with connections[using].cursor() as cursor:
        cursor.execute(sql, message_ids)


def user_id_of(owner_key: str) -> int | None:
    """The user of a signed-in owner's key (`u:<id>`); None for a browser session or the public."""
    return int(owner_key[2:]) if owner_key.startswith("u:") and owner_key[2:].isdigit() else None


def call_entry_write(
    *,
    kind: str,
    owner_key: str,
    model: str,
    usage: dict[str, int] | None = None,
    cost: Decimal | None = None,
    conversation_id: int | None = None,
    pages: int | None = None,
) -> UsageEntry:
    """Append the entry of a billed call other than a reply (a title, an OCR read): one INSERT."""
    usage = usage or {}
    return UsageEntry.objects.create(
        kind=kind,
        owner_key=owner_key,
        user_id=user_id_of(owner_key),
        conversation_id=conversation_id,
        model=model,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        total_tokens=usage.get("total_tokens"),
        pages=pages,
        cost=cost,
    )


def catalog_cost(model: str, usage: dict[str, int] | None) -> Decimal | None:
    """What a call to `model` with this usage cost at its catalog prices now (None: unpriced)."""
    prices = ChatModel.objects.filter(name=model).values_list("price_input", "price_output", "price_cached")
    row = prices.first()
    return reply_cost(usage, Prices(*row)) if row else None


def title_billed(*, ref: ConversationRef, model: str, usage: dict[str, int] | None, title: str) -> bool:
    """Append the entry of a title request made for the conversation `ref` names (billed whether or not
    its title is stored) and store `title` unless it is empty or the user renamed the conversation
    meanwhile (or the model's was already stored); True if it was stored.

    On PostgreSQL two statements, on one worker thread: one read (the conversation and the model's
    catalog prices), then the entry's INSERT carrying the title's UPDATE. The reply path's thread pool
    and the database see one call where the entry alone took three and the title one more."""
    connection = connections["default"]
    if connection.vendor != "postgresql":
        title_entry_write(ref=ref, model=model, usage=usage)
        return bool(title) and _title_store(ref, title)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT id FROM {Conversation._meta.db_table} WHERE owner_key = %s AND session_id = %s),"
            f" m.price_input, m.price_output, m.price_cached FROM (SELECT 1) AS one"
            f" LEFT JOIN {ChatModel._meta.db_table} m ON m.name = %s",
            [ref.owner_key, ref.session_id, model],
        )
        conversation_id, *prices = cursor.fetchone()
        usage = usage or {}
        entry = [
            UsageEntry.Kind.TITLE,
            ref.owner_key,
            user_id_of(ref.owner_key),
            conversation_id,
            None,
            model,
            "",
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
            usage.get("total_tokens"),
            reply_cost(usage, Prices(*prices)),
            timezone.now(),
        ]
        placeholders = ", ".join(["%s"] * len(entry))
        insert = f"INSERT INTO {UsageEntry._meta.db_table} ({_COLUMNS}) VALUES ({placeholders})"
        if not title or conversation_id is None:
            cursor.execute(insert, entry)
            return False
        cursor.execute(
            f"WITH titled AS (UPDATE {Conversation._meta.db_table} SET title = %s, title_source = %s"
            f" WHERE id = %s AND title_source = %s RETURNING 1)"
            f" {insert} RETURNING (SELECT count(*) FROM titled)",
            [
                title[:200],
                Conversation.TitleSource.MODEL,
                conversation_id,
                Conversation.TitleSource.FIRST_LINE,
                *entry,
            ],
        )
        return bool(cursor.fetchone()[0])


def _title_store(ref: ConversationRef, title: str) -> bool:
    """Store the model's title unless the user renamed the conversation (or the model's is stored)."""
    return bool(
        Conversation.objects.filter(
            owner_key=ref.owner_key,
            session_id=ref.session_id,
            title_source=Conversation.TitleSource.FIRST_LINE,
        ).update(title=title[:200], title_source=Conversation.TitleSource.MODEL)
    )


def title_entry_write(*, ref: ConversationRef, model: str, usage: dict[str, int] | None) -> None:
    """Append the entry of a title request made for the conversation `ref` names (billed whether or not
    its title is stored)."""
    conversation_id = (
        Conversation.objects.filter(owner_key=ref.owner_key, session_id=ref.session_id)
        .values_list("pk", flat=True)
        .first()
    )
    call_entry_write(
        kind=UsageEntry.Kind.TITLE,
        owner_key=ref.owner_key,
        model=model,
        usage=usage,
        cost=catalog_cost(model, usage),
        conversation_id=conversation_id,
    )
