"""The usage ledger's writes: one UsageEntry per billed call, appended when the call ends and never
changed or deleted after (conversations and their replies may go; what they cost stays).

A reply's entry is written by the statement that stores its end, so a reply never ends without one and
never gets two: on PostgreSQL a single statement (the fenced UPDATE's RETURNING feeds the INSERT: no
round trip more than the end itself), elsewhere the same two statements in one transaction. Titles and
OCR reads, off the reply's path, each add theirs with one INSERT.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import connections, transaction
from django.db.models import QuerySet
from django.db.models.sql import UpdateQuery

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
