"""The usage ledger's writes: one UsageEntry per billed call, appended when the call ends and never
changed or deleted after (conversations and their replies may go; what they cost stays).

A reply's entry is written by the statement that stores its end, so a reply never ends without one and
never gets two: a single statement (the fenced UPDATE's RETURNING feeds the INSERT: no round trip more
than the end itself). A title's
entry is written by the statement that stores the title (after one read of the conversation and the
model's prices), an OCR read's with one INSERT; both are off the reply's path.
"""

from __future__ import annotations

import enum
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

# Tokens are estimated from text at this many characters each, when the upstream reported none.
CHARS_PER_TOKEN = 4


def tokens_estimate(chars: int) -> int:
    """A token count for that many characters of text, when the upstream gave none."""
    return -(-chars // CHARS_PER_TOKEN)


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
    """Append the entry of a billed call other than a reply (a title, an OCR read, an embeddings request):
    one INSERT."""
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


def input_cost(model: str, prompt_tokens: int) -> Decimal | None:
    """What `prompt_tokens` of input to `model` cost at its catalog input price now (an embeddings
    request has no output; None: the catalog prices no input for `model`)."""
    price = ChatModel.objects.filter(name=model).values_list("price_input", flat=True).first()
    return (
        reply_cost({"prompt_tokens": prompt_tokens}, Prices(price, Decimal(0))) if price is not None else None
    )


class TitleStore(enum.Enum):
    """What became of a model's title: stored; kept out (empty, the user renamed the conversation, the
    model's is stored, or the conversation is gone); or not stored yet because a turn holds the
    conversation's row (`title_store_retry` stores it once the turn's batch committed)."""

    STORED = "stored"
    KEPT_OUT = "kept_out"
    ROW_BUSY = "row_busy"


def title_billed(*, ref: ConversationRef, model: str, usage: dict[str, int] | None, title: str) -> TitleStore:
    """Append the entry of a title request made for the conversation `ref` names (billed whether or not
    its title is stored) and store `title` unless it is empty or the user renamed the conversation
    meanwhile (or the model's was already stored).

    Two statements, on one worker thread: one read (the conversation and the model's
    catalog prices), then the entry's INSERT carrying the title's UPDATE. The reply path's thread pool
    and the database see one call where the entry alone took three and the title one more.

    The title never waits for a row lock: a conversation's second turn arrives as its first reply ends,
    which is when its title is stored, and a title queued on the row a turn batch holds would then hold
    up the next batch, every turn in it. Its row busy, the entry is written and ROW_BUSY returned."""
    table = Conversation._meta.db_table
    with connections["default"].cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT id FROM {table} WHERE owner_key = %s AND session_id = %s),"
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
            return TitleStore.KEPT_OUT
        # `free` is the row unless a turn holds it (SKIP LOCKED); `waiting` says whether the row still
        # wants the model's title, read without a lock: wanted but not free means busy.
        cursor.execute(
            f"WITH free AS (SELECT id FROM {table} WHERE id = %s AND title_source = %s"
            f" FOR NO KEY UPDATE SKIP LOCKED),"
            f" titled AS (UPDATE {table} SET title = %s, title_source = %s"
            f" WHERE id IN (SELECT id FROM free) RETURNING 1)"
            f" {insert} RETURNING (SELECT count(*) FROM titled),"
            f" (SELECT count(*) FROM {table} WHERE id = %s AND title_source = %s)",
            [
                conversation_id,
                Conversation.TitleSource.FIRST_LINE,
                title[:200],
                Conversation.TitleSource.MODEL,
                *entry,
                conversation_id,
                Conversation.TitleSource.FIRST_LINE,
            ],
        )
        titled, waiting = cursor.fetchone()
    if titled:
        return TitleStore.STORED
    return TitleStore.ROW_BUSY if waiting else TitleStore.KEPT_OUT


def title_store_retry(*, ref: ConversationRef, title: str, row_wait: bool) -> TitleStore:
    """Store a title that found its conversation's row busy (no second ledger entry): STORED, KEPT_OUT,
    or ROW_BUSY again, unless `row_wait`, which waits for the row as any update does."""
    return _title_store(ref, title, row_wait=row_wait)


@transaction.atomic
def _title_store(ref: ConversationRef, title: str, *, row_wait: bool) -> TitleStore:
    """Store the model's title unless the user renamed the conversation (or the model's is stored)."""
    wanting = Conversation.objects.filter(
        owner_key=ref.owner_key, session_id=ref.session_id, title_source=Conversation.TitleSource.FIRST_LINE
    )
    row = wanting.select_for_update(no_key=True, skip_locked=not row_wait).values_list("pk", flat=True)
    pk = row.first()
    if pk is None:
        return TitleStore.ROW_BUSY if not row_wait and wanting.exists() else TitleStore.KEPT_OUT
    Conversation.objects.filter(pk=pk).update(title=title[:200], title_source=Conversation.TitleSource.MODEL)
    return TitleStore.STORED
