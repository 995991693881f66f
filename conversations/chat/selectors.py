"""Reads: what the page and the socket show of conversations and models."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Now

from .. import protocol
from ..agents.own import own_agents_for_page, own_agents_on
from ..attachments.store import attachment_as_dict, attachments_named
from ..exceptions import InternalError, NoSuchMessage
from ..models import Agent, ChatModel, Conversation, MCPCredential, MCPServerPreset, Message, Share
from ..owners import ConversationRef
from ..teams.access import usable
from ..usage_ledger import user_id_of
from ..validators import MCP_SLUG_RE
from .feedback import feedback_shown
from .reply_end import ReplyEnd
from .threads import Pairs, Siblings, thread_leaf_id, thread_path_ids, thread_siblings


@dataclass(frozen=True, slots=True)
class ThreadState:
    """What a turn needs of a conversation's messages, read in one query: the tree, the reply streaming
    (its id, and whether its lease lapsed), and the message that already carries the frame's client id."""

    pairs: Pairs
    streaming: tuple[int, bool] | None = None
    sent_id: int | None = None


def thread_state(*, conversation_id: int, client_id: str = "") -> ThreadState:
    """Read a conversation's tree, its streaming reply and the message sent with `client_id` at once."""
    return threads_state(client_ids={conversation_id: client_id})[conversation_id][0]


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """What a turn reads of each message of its conversation: its place in the tree, and its role and
    text (a path's messages go upstream)."""

    id: int
    parent_id: int | None
    role: str
    content: str
    attachment_ids: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # an API client's tools a reply called
    tool_call_id: str = ""  # a tool result's call


def threads_state(*, client_ids: dict[int, str]) -> dict[int, tuple[ThreadState, dict[int, ThreadMessage]]]:
    """Read the trees of many conversations at once (their ids are the keys of `client_ids`), each with
    its streaming reply, the message sent with that conversation's client id, and every message's role
    and text by id: the turns of a whole batch cost one round trip, not three each."""
    rows = (
        Message.objects.filter(conversation_id__in=list(client_ids))
        .order_by("id")
        .annotate(lapsed=Q(lease_expires_at__lt=Now()))
        .values_list(
            "conversation_id",
            "id",
            "parent_id",
            "role",
            "content",
            "status",
            "client_id",
            "lapsed",
            "attachment_ids",
            "tool_calls",
            "tool_call_id",
        )
    )
    pairs: dict[int, Pairs] = {conversation_id: [] for conversation_id in client_ids}
    messages: dict[int, dict[int, ThreadMessage]] = {conversation_id: {} for conversation_id in client_ids}
    streaming: dict[int, tuple[int, bool]] = {}
    sent: dict[int, int] = {}
    for (
        conversation_id,
        message_id,
        parent_id,
        role,
        content,
        status,
        sent_with,
        lapsed,
        attached,
        tool_calls,
        tool_call_id,
    ) in rows:
        pairs[conversation_id].append((message_id, parent_id))
        messages[conversation_id][message_id] = ThreadMessage(
            message_id, parent_id, role, content, attached, tool_calls, tool_call_id
        )
        if status == Message.Status.STREAMING:
            streaming.setdefault(conversation_id, (message_id, bool(lapsed)))
        if sent_with and sent_with == client_ids[conversation_id]:
            sent.setdefault(conversation_id, message_id)
    return {
        conversation_id: (
            ThreadState(
                pairs=pairs[conversation_id],
                streaming=streaming.get(conversation_id),
                sent_id=sent.get(conversation_id),
            ),
            messages[conversation_id],
        )
        for conversation_id in client_ids
    }


def thread_pairs(*, conversation_id: int) -> Pairs:
    """Read a conversation's tree once; paths and siblings are then walked in Python, not per message."""
    return list(
        Message.objects.filter(conversation_id=conversation_id).order_by("id").values_list("id", "parent_id")
    )


def message_as_dict(
    message: Message,
    *,
    siblings: Siblings,
    attachments: dict[str, dict[str, Any]] | None = None,
    feedback: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A stored message as the wire protocol shows it, with its parent and its siblings' ids, and its
    attachments as their owner sees them.

    `siblings` comes from `thread_siblings` of the conversation's one pairs read, `attachments` from
    `attachments_shown` and `feedback` from `feedback_shown` of the messages rendered, so rendering many
    messages costs no query per message.
    """
    shown = attachments or {}
    return {
        "id": message.pk,
        "parent_id": message.parent_id,
        "siblings": siblings.get(message.parent_id) or [message.pk],
        "role": message.role,
        "content": message.content,
        "reasoning": message.reasoning,
        "reasoning_ms": message.reasoning_ms,
        "model": message.model,
        "mcp_servers": message.mcp_servers,
        "status": message.status,
        "error": message.error,
        "error_code": message.error_code,
        "finish_reason": message.finish_reason,
        "usage": message.usage,
        "tools": message.tools,
        "tool_calls": message.tool_calls,
        "tool_call_id": message.tool_call_id,
        "client_id": message.client_id,
        "agent": message.agent_slug or None,
        "served_models": message.served_models,
        "attachments": [shown[i] for i in message.attachment_ids if i in shown],
        "feedback": (feedback or {}).get(message.pk),
        "handoffs": protocol.handoffs_of(message.served_models, message.handoff_offsets),
        "context_dropped": message.context_dropped,
        "created_at": message.created_at.isoformat(),
        "finished_at": message.finished_at.isoformat() if message.finished_at else None,
    }


# Stands for the user's id in the new chat's compiled statement (no user has it), to be replaced by theirs.
_USER_ID_SLOT = -7_340_033


def _new_chat_rows(user_id: int | None) -> Any:
    """The query of `new_chat_answerer`: the enabled models `user_id` may use, the default first, each
    with the default agent they may use (its slug and models)."""
    default_agent = usable(Agent.objects.enabled(), user_id).filter(is_default=True)
    return (
        usable(ChatModel.objects.enabled(), user_id)
        .order_by("-is_default", "position", "label")  # the default, else the first in the admin's order
        .annotate(
            agent_slug=Subquery(default_agent.values("slug")[:1]),
            agent_models=Subquery(default_agent.values("model_names")[:1]),
        )
        .values_list("name", "agent_slug", "agent_models")[:1]
    )


@functools.cache
def _new_chat_statement(signed_in: bool) -> tuple[str, tuple[Any, ...]]:
    """The SQL of `_new_chat_rows`, compiled once per process for each kind of owner: every new chat's
    socket asks, and compiling its group filters' subqueries cost more than running them. Only the
    statement is kept; what it reads (groups, agents, models) is read each time."""
    return _new_chat_rows(_USER_ID_SLOT if signed_in else None).query.sql_with_params()


def new_chat_answerer(user_id: int | None = None) -> tuple[str | None, str]:
    """Who a chat not stored yet sends its first message to, as `answerers.answerer_choose` picks when
    the frame names no one: the default agent if `user_id` may use it (its slug and first model), else
    the default model if they may, else the first they may ("" when none). A page sets its picker from
    this. One query, as every new chat's socket asks."""
    sql, params = _new_chat_statement(user_id is not None)
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id if param == _USER_ID_SLOT else param for param in params])
        row = cursor.fetchone()
    if row is None:
        return None, ""  # nothing enabled: no one can answer, not even an agent
    name, agent_slug, agent_models = row
    if isinstance(agent_models, str):  # jsonb comes back as text to Django's cursor
        agent_models = orjson.loads(agent_models)
    if agent_slug and agent_models:
        return agent_slug, agent_models[0]
    return None, name


def conversation_history(*, ref: ConversationRef) -> dict[str, Any]:
    """Return the owner's conversation and the last CHAT_HISTORY_PAGE messages of its active branch,
    oldest first, with `has_more` when older ones precede them; an empty one if there is none.

    A streaming reply is always the branch's leaf (nothing switches branches while one streams), so it
    is always in this latest page, where the relay looks for it.
    """
    conversation = (
        Conversation.objects.filter(owner_key=ref.owner_key, session_id=ref.session_id)
        .select_related("agent")
        .first()
    )
    if conversation is None:
        agent, model = new_chat_answerer(user_id_of(ref.owner_key))
        return {
            "conversation": {
                "agent": agent,
                "session_id": ref.session_id,
                "title": "",
                "model": model,
                "mcp_servers": [],
                "settings": {},
                "created_at": None,
            },
            "messages": [],
            "has_more": False,
        }
    pairs, path = _active_path(conversation)
    return {
        "conversation": {
            "session_id": conversation.session_id,
            "title": conversation.title,
            "agent": conversation.agent.slug if conversation.agent else None,
            "model": conversation.model,
            "mcp_servers": conversation.mcp_servers,
            "settings": conversation.settings,
            "created_at": conversation.created_at.isoformat(),
        },
        **_path_page(pairs, path, end=len(path)),
    }


def conversation_history_page(*, ref: ConversationRef, before: int) -> dict[str, Any]:
    """The up to CHAT_HISTORY_PAGE messages of the active branch before message `before`, oldest first,
    with `has_more` when older ones precede them.

    Raise NoSuchMessage (`invalid_message`) when `before` is not on the active branch of the owner's
    conversation (another owner's message looks exactly like one that does not exist).
    """
    conversation = Conversation.objects.filter(owner_key=ref.owner_key, session_id=ref.session_id).first()
    pairs, path = _active_path(conversation) if conversation is not None else ([], [])
    try:
        end = path.index(before)
    except ValueError:
        raise NoSuchMessage() from None
    return _path_page(pairs, path, end=end)


def _active_path(conversation: Conversation) -> tuple[Pairs, list[int]]:
    """The conversation's pairs and the ids of its active branch, first message first."""
    pairs = thread_pairs(conversation_id=conversation.pk)
    return pairs, thread_path_ids(pairs, thread_leaf_id(pairs, conversation.current_message_id))


def history_bytes_budget() -> int:
    """The bytes a page of messages may take in one frame: the frame cap, less room for the rest."""
    return settings.CHAT_MAX_SERVER_FRAME_BYTES * 3 // 4


def message_bounded(message: dict[str, Any], *, limit: int) -> dict[str, Any]:
    """A message as a frame may carry it: whole, or its text cut to `limit` characters, marked
    `truncated` with its whole `length` (the export holds every character); its reasoning, cut to what
    the text leaves of `limit`, is marked `reasoning_truncated`."""
    content, reasoning = message["content"], message.get("reasoning") or ""
    if len(content) + len(reasoning) <= limit:
        return message
    message = dict(message)
    if len(content) > limit:
        message.update(content=content[:limit], truncated=True, length=len(content))
    room = max(0, limit - len(message["content"]))
    if len(reasoning) > room:
        message.update(reasoning=reasoning[:room], reasoning_truncated=True)
    return message


def attachments_shown(messages: Iterable[Message]) -> dict[str, dict[str, Any]]:
    """The attachments these messages carry, as their owner sees them, by id (one query, none when no
    message has any)."""
    ids = {i for message in messages for i in message.attachment_ids}
    return {i: attachment_as_dict(row) for i, row in attachments_named(ids).items()}


def _path_page(pairs: Pairs, path: list[int], *, end: int) -> dict[str, Any]:
    """The page of path messages that ends just before position `end`, and whether more precede it.

    A page holds at most CHAT_HISTORY_PAGE messages and at most `history_bytes_budget()` bytes of them
    (the newest that fit, at least one), so no history frame outgrows a WebSocket message.
    """
    start = max(0, end - max(1, settings.CHAT_HISTORY_PAGE))
    ids = path[start:end]
    rows = Message.objects.in_bulk(ids)
    siblings = thread_siblings(pairs)
    attachments = attachments_shown(rows.values())
    opinions = feedback_shown(rows.values())
    budget = history_bytes_budget()
    page: list[dict[str, Any]] = []
    size = 0
    for pk in reversed(ids):
        if pk not in rows:
            continue
        # A character takes at most 6 bytes in JSON (a \u escape), so a cut to budget / 12 leaves room.
        shown = message_as_dict(rows[pk], siblings=siblings, attachments=attachments, feedback=opinions)
        message = message_bounded(shown, limit=budget // 12)
        cost = len(orjson.dumps(message))
        if page and size + cost > budget:
            break
        page.append(message)
        size += cost
    page.reverse()
    return {"messages": page, "has_more": start > 0 or len(page) < len(ids)}


def chat_page_options(user_id: int | None = None) -> dict[str, Any]:
    """The agents (the operator's, and `user_id`'s own), models and MCP presets the page offers (a
    default agent is picked before a default model, as a new conversation's first message is answered),
    and for presets that ask each user for credentials, whether `user_id` saved theirs (never a value)."""
    agents = agents_enabled(user_id, for_page=True)
    own_agents = own_agents_for_page(user_id)
    default_agent = any(agent["default"] for agent in agents)
    models = list(usable(ChatModel.objects.enabled(), user_id))
    # The default model if this user may use it, else the first they may, as a first message goes.
    default_model = next((m for m in models if m.is_default), models[0] if models else None)
    saved = set()
    if user_id is not None:
        saved = set(MCPCredential.objects.filter(user_id=user_id).values_list("preset_id", flat=True))
    presets = list(MCPServerPreset.objects.enabled())
    labels = {preset.target: preset.label for preset in presets}
    for agent in agents:  # named as the page shows them, never as stored
        agent["mcp_names"] = [mcp_server_name(target, labels) for target in agent.pop("mcp_servers")]
    return {
        "agents": agents,
        "own_agents": own_agents,
        "agents_named": agents + own_agents,  # how a reply's agent is named
        "own_agents_on": own_agents_on(),
        "own_agent_instructions_max": settings.CHAT_USER_AGENT_INSTRUCTIONS_CHARS,
        "models": [
            {
                "name": m.name,
                "label": m.label,
                "is_default": m is default_model and not default_agent,
                "output_token_limit": m.output_token_limit,
                "vision": (m.capabilities or {}).get("vision"),
                "thinks": (m.capabilities or {}).get("thinking") is True,
            }
            for m in models
        ],
        "mcp_presets": [
            {
                "id": p.pk,
                "label": p.label,
                "target": p.target,
                "description": p.description,
                "user_credentials": p.user_credentials,
                "names": p.credential_names,
                "names_id": f"credential-names-{p.pk}",
                "saved": p.pk in saved,
            }
            for p in presets
        ],
    }


def mcp_server_name(target: str, labels: dict[str, str]) -> str:
    """How the page names an MCP server an agent uses: its preset's label, a slug as written, a URL by
    its host (a URL's path or query may carry a key the operator never meant to show)."""
    if target in labels:
        return labels[target]
    if MCP_SLUG_RE.match(target):
        return target
    return urlsplit(target).netloc


def reply_stored(*, reply_id: int) -> Message | None:
    """The stored row of a reply (to end a follower whose writer is gone, or to resend a span)."""
    return (
        Message.objects.filter(pk=reply_id, role=Message.Role.ASSISTANT)
        .select_related("conversation")
        .first()
    )


def reply_end_frame(message: Message | None, reply_id: int) -> dict[str, Any]:
    """The `done` or `error` frame that ends a reply, rebuilt from its stored row."""
    if message is None:
        return protocol.error_frame_of(InternalError("The reply is gone."), message_id=reply_id)
    return ReplyEnd.stored(message).frame(reply_id)


def conversation_streaming_reply(*, ref: ConversationRef) -> tuple[int, str] | None:
    """The id of the reply streaming in a conversation, if any, and the instance streaming it (its id)."""
    return (
        Message.objects.streaming()
        .filter(conversation__owner_key=ref.owner_key, conversation__session_id=ref.session_id)
        .values_list("pk", "streamed_by")
        .order_by("-pk")
        .first()
    )


def owner_has_api_conversations(*, owner_key: str) -> bool:
    """Whether the owner has a conversation of the OpenAI-compatible API (the sidebar offers its filter)."""
    return Conversation.objects.filter(owner_key=owner_key, source=Conversation.Source.API).exists()


def conversations_of_owner(
    *, owner_key: str, query: str = "", limit: int = 30, offset: int = 0, source: str = ""
) -> list[dict[str, Any]]:
    """The owner's conversations, pinned ones first (the latest pinned first), then the most recently
    active; `query` matches titles and message text (Postgres's full-text search); `source` (page, api)
    keeps those its turns came from."""
    conversations = Conversation.objects.filter(owner_key=owner_key)
    if source:
        conversations = conversations.filter(source=source)
    if query:
        messages = Message.objects.filter(conversation__owner_key=owner_key)
        # Full-text search: word stems ("recipes" finds "recipe"), ranked by Postgres, not substrings.
        vector = SearchVector("content", config="english")
        matching = messages.annotate(search=vector).filter(search=SearchQuery(query, config="english"))
        conversations = conversations.filter(
            Q(title__icontains=query) | Q(pk__in=matching.values("conversation_id"))
        )
    return [
        {
            "session_id": conversation.session_id,
            "title": conversation.title or "New chat",
            "model": conversation.model,
            "updated_at": conversation.updated_at.isoformat(),
            "pinned": conversation.pinned_at is not None,
            "shared": conversation.shared,
            "source": conversation.source,
        }
        for conversation in conversations.annotate(
            shared=Exists(Share.objects.filter(conversation=OuterRef("pk")))
        ).order_by(F("pinned_at").desc(nulls_last=True), "-updated_at", "-pk")[offset : offset + limit]
    ]


def conversation_export(*, owner_key: str, session_id: str) -> dict[str, Any] | None:
    """The owner's conversation with every message of every branch, for download (no version is lost);
    `current_message_id` names the active branch's leaf. None when they have no conversation of that id.
    """
    conversation = Conversation.objects.filter(owner_key=owner_key, session_id=session_id).first()
    if conversation is None:
        return None
    messages = list(Message.objects.history(conversation))
    pairs = sorted((message.pk, message.parent_id) for message in messages)
    siblings = thread_siblings(pairs)
    shown = attachments_shown(messages)
    opinions = feedback_shown(messages)
    return {
        "session_id": conversation.session_id,
        "title": conversation.title,
        "model": conversation.model,
        "created_at": conversation.created_at.isoformat(),
        "current_message_id": thread_leaf_id(pairs, conversation.current_message_id),
        "messages": [
            message_as_dict(message, siblings=siblings, attachments=shown, feedback=opinions)
            for message in messages
        ],
    }


def conversation_as_markdown(export: dict[str, Any], labels: dict[str, str] | None = None) -> str:
    """A conversation export as a Markdown document: its active branch, the text as written, under role
    headings naming the models that wrote each reply by their `labels` (`model_labels()`), as the page
    does (the JSON export keeps the other versions, and the models' ids). No query."""
    by_id = {message["id"]: message for message in export["messages"]}
    pairs = [(message["id"], message["parent_id"]) for message in export["messages"]]
    lines = [f"# {export['title'] or export['session_id']}", ""]
    labels = labels or {}
    for message_id in thread_path_ids(pairs, export["current_message_id"]):
        message = by_id[message_id]
        served = " → ".join(labels.get(name, name) for name in message["served_models"] or [message["model"]])
        who = {"user": "You", "tool": "Tool result"}.get(message["role"], f"Assistant ({served})")
        when = datetime.fromisoformat(message["created_at"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines += [f"## {who} · {when}", "", message["content"], ""]
        for call in message.get("tool_calls") or []:  # an API client's tools, as the reply called them
            function = call["function"]
            lines += [f"_Called `{function['name']}` with `{function['arguments']}`_", ""]
        attached = message.get("attachments") or []
        if attached:  # names only: the files stay behind their owner's links
            lines += [f"_Attached: {', '.join(a['name'] for a in attached)}_", ""]
        if message["status"] in ("interrupted", "error"):
            lines += [f"_{message['status']}: {message['error'] or 'stopped before the end'}_", ""]
    return "\n".join(lines)


def agents_enabled(user_id: int | None, *, for_page: bool = False) -> list[dict[str, Any]]:
    """The operator's agents `user_id` may pick (None: an anonymous requester), in the admin's order,
    as `GET /api/agents/` lists them (and, `for_page`, whether the page's settings panel applies to
    each, its colour and its MCP servers)."""
    rows = usable(Agent.objects.enabled(), user_id).only(
        "slug",
        "name",
        "description",
        "model_names",
        "is_default",
        "user_may_change_settings",
        "colour",
        "mcp_servers",
    )
    return [
        {
            "slug": agent.slug,
            "name": agent.name,
            "description": agent.description,
            "models": agent.model_names,
            "default": agent.is_default,
            **(
                {
                    "settings_editable": agent.user_may_change_settings,
                    "colour": agent.colour,
                    "mcp_servers": agent.mcp_servers,
                }
                if for_page
                else {}
            ),
        }
        for agent in rows
    ]


def model_labels() -> dict[str, str]:
    """Every catalog model's label by its name: how a page names the models that wrote a reply."""
    return dict(ChatModel.objects.values_list("name", "label"))
