"""A turn: a message sent, a message edited or a reply regenerated, stored before anything goes upstream.

Every kind of turn locks its conversation, runs the same checks (the model, the MCP servers, the owner's
limits, no reply streaming), stores what it must and opens the reply row that the instance streaming it
then writes (replies.py). That streaming row doubles as the conversation's "reply in flight" marker,
checked under the row lock, so two server instances never stream into one conversation at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from ..agents.answerers import Answerer, agents_needed, answerer_choose
from ..agents.own import agents_offered
from ..attachments.parts import attachment_tokens, mention_tokens
from ..attachments.store import attachment_as_dict, attachments_bind, attachments_check, attachments_named
from ..context import context_fit
from ..costs import Prices
from ..exceptions import (
    Busy,
    ChatError,
    EmptyMessage,
    InvalidMessage,
    InvalidSettings,
    MessageTooLong,
    NoSuchMessage,
    NoSuchReply,
)
from ..mcp.credentials import TurnCredentials, credentialed_presets, turn_credentials
from ..models import Agent, Attachment, Conversation, MCPServerPreset, Message, ModelChoice
from ..owners import ConversationRef, Owner
from ..protocol import TurnOptions
from ..teams.access import ModelsUsable, models_usable
from ..teams.budgets import budget_check, budgeted_users
from .quotas import daily_quota_check, replies_in_flight_check
from .replies import lease_expiry
from .selectors import ThreadMessage, ThreadState, message_as_dict, threads_state
from .threads import Pairs, thread_leaf_id, thread_path_ids, thread_siblings
from .titles import title_first_line


@dataclass(frozen=True, slots=True)
class DuplicateSend:
    """A resent frame whose `client_id` is already stored: nothing new was created.

    `message_id` is the message that carries it: the user message of a send or an edit, or the reply of
    a regenerate.
    """

    client_id: str
    message_id: int


@dataclass(frozen=True, slots=True)
class PriorMessage:
    """A message an API client sent before its turn: a user's, an assistant's (with the tool calls it
    made, in OpenAI's shape), or a tool's result (answering `tool_call_id`)."""

    role: str
    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_call_id: str = ""


# The kinds of turn: a message sent, a reply regenerated, a user message edited, and an API client's
# message whose history left the stored branch (api_threads.ApiBranch): sent after a stored message.
SEND, REGENERATE, EDIT, BRANCH = "send", "regenerate", "edit", "branch"


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """What a turn asks for: whose conversation, what its frame chose (`options`: the agent, model, MCP
    servers and settings, None keeping the conversation's, see answerers.py; the client's id of the
    frame, whose resend stores nothing; the attachments), the instance that will stream the reply, and
    its kind: a send's or an edit's `content`, the reply to regenerate or the message to edit
    (`target_id`); a branch's `content` and the stored message it follows (`target_id`, None: it starts
    a new first message), its `preceding` turns stored between them."""

    ref: ConversationRef
    owner: Owner
    options: TurnOptions = TurnOptions()
    streamed_by: str = ""
    kind: str = SEND
    content: str = ""
    target_id: int | None = None
    # A conversation a send creates is stored with this source (Conversation.Source), and, from the
    # API, with the earlier turns its client sent (`preceding`, stored before the message in the same
    # transaction) and its system messages (`instructions`, sent after the agent's, never stored).
    source: str = "page"
    preceding: tuple[PriorMessage, ...] = ()
    # An API send that returns the results of its reply's tool calls: stored (after `preceding`) in
    # place of a user message, which it has none of (`content` is "").
    tool_results: tuple[PriorMessage, ...] = ()
    instructions: str = ""
    # Request fields an API client passes through (top_p, stop, seed, response_format, tools), checked by its
    # parser, sent with the reply's settings, never stored; refused by an agent that keeps its settings.
    passthrough: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Turn:
    """A reply row just opened, the user message it answers when the turn stored one (None for a
    regenerate), its parent (the user message it answers), and what goes upstream."""

    ref: ConversationRef
    user_message: dict[str, Any] | None
    reply_id: int
    parent_id: int
    models: list[str]  # the model that answers, then those it may hand off to
    mcp_servers: list[str]
    # Those that carry files name them (`attachment_ids`): read into parts when the reply starts
    # (attachment_parts.request_messages), never in the turn's transaction.
    upstream_messages: list[dict[str, Any]]
    context_dropped: int = 0  # older messages left out to fit the models' context window
    attachments: dict[str, Attachment] = field(default_factory=dict)  # those the messages name, by id
    files_readable: bool = False  # every model that may write the reply reads PDFs as files
    settings: dict[str, Any] = field(default_factory=dict)
    model_settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # sent in the model's entry
    prices: Prices | None = None  # the first model's, as the turn read them: what the reply will cost
    instructions: str = ""
    agent: str = ""  # the agent's slug, "" for a plain model
    title: str = ""  # the conversation's title, on the turn that stored its first message
    # The MCP servers' credential values by target: in memory only, on their way to the upstream.
    mcp_credentials: TurnCredentials = field(default_factory=dict, repr=False)

    @property
    def model(self) -> str:
        """The model that answers first."""
        return self.models[0]


def message_content_check(content: str, *, attached: bool = False) -> None:
    """Raise EmptyMessage if the text is empty (and no attachment goes with it), MessageTooLong if longer
    than CHAT_MAX_MESSAGE_CHARS."""
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if not content.strip() and not attached:
        raise EmptyMessage()
    if len(content) > limit:
        raise MessageTooLong(f"Messages must be at most {limit} characters.")


def upstream_messages_build(
    messages: Sequence[Message | ThreadMessage], *, client_tools: bool = True
) -> list[dict[str, Any]]:
    """The history the model sees: turns in order, keeping partial replies the user saw; a user turn
    with attachments also names them (`attachment_ids`, turned into content parts when the reply starts:
    attachment_parts.py); a reply that called an API client's tools carries its `tool_calls` and each
    tool result its `tool_call_id`, in OpenAI's shape.

    A user message whose reply ended without any text (it failed, or was stopped, before the first
    token) is left out with its reply: the thread still shows it, but it is not sent with later
    messages, so a message that made the upstream fail does not make every later reply fail too. (The
    page says so under it; editing it or retrying its reply sends it again.) Two turns of one role in a
    row, which a well-formed branch never has, are merged: the upstream alternates them (tool results,
    one per call, never are).

    Without `client_tools` (a page's turn, which defines no tools), the calls and results go as text, a
    result as the user's: providers refuse tool calls in a history when the request defines no tools.
    """
    built: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not client_tools and (message.role == Message.Role.TOOL or message.tool_calls):
            message = _tool_turn_as_text(message)
        if message.role == Message.Role.TOOL:
            built.append(
                {"role": message.role, "content": message.content, "tool_call_id": message.tool_call_id}
            )
            continue
        if message.role == Message.Role.ASSISTANT and message.tool_calls:
            built.append({"role": message.role, "content": message.content, "tool_calls": message.tool_calls})
            continue
        if not message.content and message.role == Message.Role.ASSISTANT:
            continue
        if message.role == Message.Role.USER and _answered_without_text(messages, index):
            continue
        attached = list(message.attachment_ids or ())
        if built and built[-1]["role"] == message.role and not built[-1].get("tool_calls"):
            merged = {"role": message.role, "content": f"{built[-1]['content']}\n\n{message.content}"}
            attached = [*built[-1].get("attachment_ids", ()), *attached]
            built[-1] = merged
        else:
            built.append({"role": message.role, "content": message.content})
        if attached:
            built[-1]["attachment_ids"] = attached
    return built


def _tool_turn_as_text(message: Message | ThreadMessage) -> ThreadMessage:
    """A tool call's reply or a tool's result as plain text, for a request that defines no tools."""
    role, text = message.role, message.content
    if role == Message.Role.TOOL:
        role, text = Message.Role.USER, f"[Result of tool call {message.tool_call_id}]\n{text}"
    else:
        calls = "\n".join(
            f"[Called tool {function['name']} ({call.get('id', '')}): {function['arguments']}]"
            for call in message.tool_calls
            if isinstance(function := call.get("function"), dict)
        )
        text = f"{text}\n\n{calls}" if text else calls
    return ThreadMessage(
        id=message.id,
        parent_id=message.parent_id,
        role=role,
        content=text,
        attachment_ids=list(message.attachment_ids or ()),
    )


def _answered_without_text(messages: Sequence[Message | ThreadMessage], index: int) -> bool:
    """Whether the user message at `index` has a reply after it, and that reply has no text."""
    following = messages[index + 1] if index + 1 < len(messages) else None
    return (
        following is not None
        and following.role == Message.Role.ASSISTANT
        and not following.content
        and not following.tool_calls
    )


def turn_begin_for_testing(request: TurnRequest, *, content: str) -> Turn | DuplicateSend:
    """Store one send as the consumer's batches do (turns_store), for a test that needs a turn stored
    with no socket: the user's message after the active branch's leaf and the reply row opened.

    Return DuplicateSend, storing nothing, when `client_id` was already stored in this conversation;
    raise the ChatError that refused it otherwise, storing nothing.
    """
    assert settings.TEST_SUITE
    (result,) = turns_store([replace(request, kind=SEND, content=content)])
    if isinstance(result, Exception):
        raise result
    return result


TurnResult = Turn | DuplicateSend | Exception


def turns_store(requests: Sequence[TurnRequest]) -> list[TurnResult]:
    """Store many turns, of any kind and in different conversations, in one transaction, and return each
    one's result in order: its Turn, a DuplicateSend, or the ChatError that refused it (nothing of it
    stored).

    Under load the turns a server receives at once share one lock statement, one read of their trees,
    one insert of their messages and one of their replies (a group commit), instead of nine round trips
    and their ORM work each. A later request for a conversation already in the batch is stored after the
    batch, so it finds the earlier one's reply streaming. When the database refuses a request's rows,
    each request is stored again on its own, so that only that one fails (with the database's error);
    a failure of the database itself (OperationalError, InterfaceError) is raised for all, since their
    COMMIT may have landed.
    """
    first: list[int] = []
    later: list[int] = []
    seen: set[str] = set()
    for index, request in enumerate(requests):
        key = request.ref.room_key
        (later if key in seen else first).append(index)
        seen.add(key)
    results: list[TurnResult | None] = [None] * len(requests)
    batch = [requests[index] for index in first]
    try:
        stored = _turns_store_atomic(batch)
    except (IntegrityError, DataError):
        if len(batch) == 1:
            raise
        stored = [_turn_store_alone(request) for request in batch]
    for index, result in zip(first, stored, strict=True):
        results[index] = result
    if later:
        for index, result in zip(later, turns_store([requests[index] for index in later]), strict=True):
            results[index] = result
    return [result for result in results if result is not None]


def _turn_store_alone(request: TurnRequest) -> TurnResult:
    try:
        return _turns_store_atomic([request])[0]
    except (IntegrityError, DataError) as exc:
        return exc


@dataclass(slots=True)
class _TurnPlan:
    """One request's turn, checked and ready to write: the locked conversation and its tree, the model
    and servers, the user message to store (a send's or an edit's) and the reply's place."""

    index: int
    request: TurnRequest
    conversation: Conversation
    pairs: Pairs
    answerer: Answerer
    path: list[ThreadMessage]
    user_parent_id: int | None = None
    user_message: Message | None = None
    reply_parent_id: int | None = None
    upstream_messages: list[dict[str, Any]] = field(default_factory=list)
    request_attachments: dict[str, Attachment] = field(default_factory=dict)  # named by upstream_messages
    context_dropped: int = 0
    mcp_credentials: TurnCredentials = field(default_factory=dict, repr=False)
    prices: Prices | None = None
    attachments: list[Attachment] = field(default_factory=list)  # the user message's, checked
    files_readable: bool = False  # every model that may write the reply reads PDFs as files


@transaction.atomic
def _turns_store_atomic(requests: Sequence[TurnRequest]) -> list[TurnResult]:
    """Store turns of distinct conversations together (see `turns_store`)."""
    results: list[TurnResult | None] = [None] * len(requests)
    for index, request in enumerate(requests):
        if request.kind != REGENERATE and not request.tool_results:
            try:
                message_content_check(request.content, attached=bool(request.options.attachments))
            except ChatError as exc:
                results[index] = exc
    conversations, created = _conversations_lock([r for i, r in enumerate(requests) if results[i] is None])
    trees = threads_state(
        client_ids={
            conversations[request.ref.room_key].pk: request.options.client_id
            for index, request in enumerate(requests)
            if results[index] is None and request.ref.room_key in conversations
        }
    )
    enabled: list[ModelChoice] | None = None  # every enabled model
    usable_models: dict[int | None, ModelsUsable] = {}  # what each owner may use of them
    agents: dict[int | None, dict[str, Agent]] | None = None  # what each owner may name, by slug
    credentialed: dict[str, MCPServerPreset] | None = None
    budgeted: set[int] | None = None  # the batch's users some budget caps, read once
    named = attachments_named({i for request in requests for i in request.options.attachments or ()})
    replies_added: dict[str, int] = {}
    plans: list[_TurnPlan] = []
    # What each owner may use, read for the whole batch on every batch: never cached, so a user who left
    # a group loses its agents and models at their next message.
    owners = {request.owner.user_id for request in requests}
    for index, request in enumerate(requests):
        if results[index] is not None:
            continue
        conversation = conversations.get(request.ref.room_key)
        if conversation is None:
            results[index] = _missing_error(request)
            continue
        thread, messages = trees[conversation.pk]
        if thread.sent_id is not None:
            results[index] = DuplicateSend(client_id=request.options.client_id, message_id=thread.sent_id)
            continue
        if enabled is None:
            enabled, usable_models = models_usable(owners)
        if agents is None and agents_needed(
            agent_slug=request.options.agent, model=request.options.model, conversation=conversation
        ):
            agents = agents_offered(owners)
        models = usable_models[request.owner.user_id]
        offered = (agents or {}).get(request.owner.user_id, {})
        try:
            plan = _turn_plan(index, request, conversation, thread, messages, models, offered)
            plan.prices = next((c.prices for c in models.choices if c.name == plan.answerer.model), None)
            readers = [choice for choice in models.choices if choice.name in plan.answerer.models]
            plan.files_readable = bool(readers) and all(choice.vision for choice in readers)
            attachment_ids = _attachment_ids_of(request, messages)
            if attachment_ids:
                named.update(attachments_named(set(attachment_ids) - named.keys()))  # an edit's own
                plan.attachments = attachments_check(
                    attachment_ids,
                    rows=named,
                    owner_key=request.ref.owner_key,
                    conversation_id=conversation.pk,
                    readers=readers,
                )
            if plan.answerer.mcp_servers:
                if credentialed is None:
                    credentialed = credentialed_presets()
                plan.mcp_credentials = turn_credentials(
                    plan.answerer.mcp_servers, presets=credentialed, user_id=request.owner.user_id
                )
            owner_key = request.ref.owner_key
            replies_in_flight_check(owner_key=owner_key, adding=replies_added.get(owner_key, 0))
            daily_quota_check(owner_key=owner_key)
            if request.owner.user_id is not None:
                if budgeted is None:
                    budgeted = budgeted_users({r.owner.user_id for r in requests} - {None})
                if request.owner.user_id in budgeted:
                    budget_check(user_id=request.owner.user_id)
        except ChatError as exc:
            results[index] = exc
            continue
        replies_added[owner_key] = replies_added.get(owner_key, 0) + 1
        plans.append(plan)
    # A conversation created for a turn that was refused goes too: a refusal stores nothing. (One that
    # holds messages was another instance's, created at the same moment.)
    planned = {plan.request.ref.room_key for plan in plans}
    abandoned = [
        conversation.pk
        for key in created - planned
        if not trees[(conversation := conversations[key]).pk][0].pairs
    ]
    if abandoned:
        Conversation.objects.filter(pk__in=abandoned).delete()
    if plans:
        limits = {choice.name: choice.input_token_limit for choice in enabled or []}
        for plan, turn in zip(plans, _turns_write(plans, limits), strict=True):
            results[plan.index] = turn
    return [result for result in results if result is not None]


def _missing_error(request: TurnRequest) -> ChatError:
    """The refusal of a regenerate or an edit in a conversation that does not exist."""
    return NoSuchReply() if request.kind == REGENERATE else NoSuchMessage()


def _conversations_lock(requests: Sequence[TurnRequest]) -> tuple[dict[str, Conversation], set[str]]:
    """Lock the requests' conversations, by room key, creating those a send starts; return them and
    the keys of those created here.

    The row locks serialise turns of one conversation across threads and server instances. Every batch
    takes them in one order (the existing rows by id, then the new ones by key), so two batches sharing
    conversations wait for each other instead of deadlocking.
    """
    keys = {request.ref.room_key: request for request in requests}
    if not keys:
        return {}, set()
    found = _conversations_locked(list(keys.values()))
    missing = [request for key, request in keys.items() if key not in found and request.kind == SEND]
    if not missing:
        return found, set()
    missing.sort(key=lambda request: request.ref.room_key)
    Conversation.objects.bulk_create(
        [
            Conversation(
                owner_key=request.ref.owner_key,
                session_id=request.ref.session_id,
                user_id=request.owner.user_id,
                owner_session_key=request.owner.session_digest,
                title=title_first_line(request.content or _first_question(request.preceding)),
                source=request.source,
            )
            for request in missing
        ],
        # Created by another instance meanwhile: locked below all the same, and its turn, which stored
        # its messages with it, found in the tree.
        ignore_conflicts=True,
    )
    created = _conversations_locked(missing)
    found.update(created)
    return found, set(created)


def _first_question(preceding: Sequence[PriorMessage]) -> str:
    """The first user message an API client sent before its turn (a turn of tool results has none)."""
    return next((prior.content for prior in preceding if prior.role == Message.Role.USER), "")


def _conversations_locked(requests: Sequence[TurnRequest]) -> dict[str, Conversation]:
    named = Q()
    for request in requests:
        named |= Q(owner_key=request.ref.owner_key, session_id=request.ref.session_id)
    rows = Conversation.objects.select_for_update().filter(named).order_by("pk")
    return {ConversationRef(row.owner_key, row.session_id).room_key: row for row in rows}


def _turn_plan(
    index: int,
    request: TurnRequest,
    conversation: Conversation,
    thread: ThreadState,
    messages: dict[int, ThreadMessage],
    models: ModelsUsable,
    agents: dict[str, Agent],
) -> _TurnPlan:
    """Check one request against its locked conversation and place its turn in the tree.

    Raise ChatError `unknown_agent`, `unknown_model`, `invalid_mcp_server`, `invalid_message` (a
    regenerate or an edit of a message that is not of that kind in this conversation), or `busy` when a
    reply still streams.
    """
    answerer = answerer_choose(
        agent_slug=request.options.agent,
        model=request.options.model,
        mcp_servers=request.options.mcp_servers,
        conversation=conversation,
        enabled=models.choices,
        withheld=models.withheld,
        agents=agents,
        settings=request.options.settings,
    )
    if request.passthrough and answerer.agent is not None and not answerer.agent.user_may_change_settings:
        raise InvalidSettings(f"{answerer.agent.name} answers with its own settings.")
    streaming_reply_refuse(thread)
    plan = _TurnPlan(
        index=index,
        request=request,
        conversation=conversation,
        pairs=thread.pairs,
        answerer=answerer,
        path=[],
    )
    if request.kind == SEND:
        plan.user_parent_id = thread_leaf_id(thread.pairs, conversation.current_message_id)
        plan.path = _path(messages, thread.pairs, plan.user_parent_id)
        if request.tool_results and not request.preceding:
            _tool_results_check(request.tool_results, messages.get(plan.user_parent_id))
        return plan
    if request.kind == BRANCH:
        if request.target_id is not None and request.target_id not in messages:
            raise NoSuchMessage()
        plan.user_parent_id = request.target_id
        plan.path = _path(messages, thread.pairs, request.target_id)
        return plan
    target = messages.get(request.target_id) if request.target_id is not None else None
    if request.kind == REGENERATE:
        if target is None or target.role != Message.Role.ASSISTANT or target.parent_id is None:
            raise NoSuchReply()
        plan.reply_parent_id = target.parent_id
        plan.path = _path(messages, thread.pairs, target.parent_id)
        return plan
    if target is None or target.role != Message.Role.USER:
        raise NoSuchMessage()
    plan.user_parent_id = target.parent_id
    plan.path = _path(messages, thread.pairs, target.parent_id)
    return plan


def _tool_results_check(results: Sequence[PriorMessage], leaf: ThreadMessage | None) -> None:
    """Raise InvalidMessage unless every result answers a tool call of the conversation's latest reply
    (the upstream refuses a result without its call)."""
    called = {call.get("id") for call in leaf.tool_calls} if leaf is not None else set()
    if any(result.tool_call_id not in called for result in results):
        raise InvalidMessage("The tool results answer no tool call of the conversation's latest reply.")


def _path(messages: dict[int, ThreadMessage], pairs: Pairs, leaf_id: int | None) -> list[ThreadMessage]:
    return [messages[message_id] for message_id in thread_path_ids(pairs, leaf_id)]


def _turns_write(plans: list[_TurnPlan], limits: dict[str, int | None]) -> list[Turn]:
    """Store the planned turns' user messages, then their streaming reply rows, then their
    conversations' new leaf, model, servers and title: three statements whatever their number.

    Each streaming row doubles as its conversation's lock: no other turn starts until it ends.
    """
    for plan in plans:
        if plan.request.preceding or plan.request.tool_results:
            _preceding_store(plan)
    asking = [plan for plan in plans if plan.request.kind != REGENERATE and not plan.request.tool_results]
    for plan in plans:
        if plan.request.tool_results:
            plan.reply_parent_id = plan.user_parent_id  # the last tool result
    users = Message.objects.bulk_create(
        [
            Message(
                conversation=plan.conversation,
                parent_id=plan.user_parent_id,
                role=Message.Role.USER,
                content=plan.request.content,  # checked by message_content_check
                model=plan.answerer.model,
                mcp_servers=plan.answerer.mcp_servers,
                client_id=plan.request.options.client_id,  # a send's or an edit's id is on its user message
                attachment_ids=[str(attachment.pk) for attachment in plan.attachments],
            )
            for plan in asking
        ]
    )
    for plan, user in zip(asking, users, strict=True):
        plan.user_message, plan.reply_parent_id = user, user.pk
        attachments_bind(plan.conversation.pk, user.attachment_ids)
    for plan in plans:
        _upstream_plan(plan, limits)
    replies = Message.objects.bulk_create(
        [
            Message(
                conversation=plan.conversation,
                parent_id=plan.reply_parent_id,
                role=Message.Role.ASSISTANT,
                model=plan.answerer.model,
                mcp_servers=plan.answerer.mcp_servers,
                agent_slug=plan.answerer.agent_slug,
                request_models=plan.answerer.models,
                request_settings=plan.answerer.settings_recorded,
                context_dropped=plan.context_dropped,
                status=Message.Status.STREAMING,
                # A regenerate's id is on its new reply (it stores no user message).
                client_id=plan.request.options.client_id if plan.user_message is None else "",
                streamed_by=plan.request.streamed_by,
                lease_expires_at=lease_expiry(),
            )
            for plan in plans
        ]
    )
    _conversations_advance(plans)
    return [_turn_of(plan, reply) for plan, reply in zip(plans, replies, strict=True)]


def _preceding_store(plan: _TurnPlan) -> None:
    """Store the earlier turns an API client sent and its tool results, as a chain after the turn's
    parent (the branch's leaf, or where a branch leaves it), and place the user message (or the reply)
    after them: one insert each (a new API conversation's history, or a branch's, bounded by the
    request)."""
    parent_id = plan.user_parent_id
    for prior in (*plan.request.preceding, *plan.request.tool_results):
        message = Message.objects.create(
            conversation=plan.conversation,
            parent_id=parent_id,
            role=prior.role,
            content=prior.content,
            tool_calls=prior.tool_calls,
            tool_call_id=prior.tool_call_id,
            model=plan.answerer.model,
            status=Message.Status.COMPLETE,
        )
        plan.path.append(message)
        plan.pairs = [*plan.pairs, (message.pk, parent_id)]
        parent_id = message.pk
    plan.user_parent_id = parent_id


def _conversations_advance(plans: list[_TurnPlan]) -> None:
    """Make each planned conversation's new streaming reply its active leaf, with the turn's agent, model
    and servers: one UPDATE for all the conversations whose turns chose the same ones (a
    conversation has one streaming reply: the one just opened), not a CASE per row and column."""
    now = timezone.now()
    alike: dict[tuple[Any, ...], list[int]] = {}
    for plan in plans:
        answerer = plan.answerer
        own = answerer.own_settings
        own_key = None if own is None else tuple(sorted(own.items()))
        key = (answerer.model, tuple(answerer.mcp_servers), answerer.agent, own_key)
        alike.setdefault(key, []).append(plan.conversation.pk)
    streaming_reply = (
        Message.objects.filter(conversation_id=OuterRef("pk"), status=Message.Status.STREAMING)
        .order_by("-id")
        .values("id")[:1]
    )
    for (model, servers, agent, own_key), conversation_ids in alike.items():
        kept = {} if own_key is None else {"settings": dict(own_key)}
        Conversation.objects.filter(pk__in=conversation_ids).update(
            current_message=Subquery(streaming_reply),
            model=model,
            mcp_servers=list(servers),
            agent=agent,
            updated_at=now,
            **kept,
        )
    for plan in plans:  # a conversation is created with its title; one without (cleared) gets it again
        if not plan.conversation.title and plan.user_message is not None:
            plan.conversation.title = title_first_line(plan.user_message.content)
            Conversation.objects.filter(pk=plan.conversation.pk).update(title=plan.conversation.title)


def _attachment_ids_of(request: TurnRequest, messages: dict[int, ThreadMessage]) -> list[str]:
    """The attachments a turn's user message carries: the frame's, or for an edit that names none, those
    of the message it edits (a regenerate stores no user message)."""
    if request.kind == REGENERATE:
        return []
    if request.options.attachments is not None:
        return request.options.attachments
    edited = messages.get(request.target_id) if request.kind == EDIT and request.target_id else None
    return list(edited.attachment_ids) if edited is not None else []


def _upstream_plan(plan: _TurnPlan, limits: dict[str, int | None]) -> None:
    """What goes upstream: the branch up to the turn, cut to the smallest context window among the
    models that may write the reply (any of them may take over)."""
    path: list[ThreadMessage | Message] = list(plan.path)
    if plan.user_message is not None:
        path.append(plan.user_message)
    known = [limit for model in plan.answerer.models if (limit := limits.get(model))]
    # An API client sends its history in the shape its provider takes; the page never defines tools.
    built = upstream_messages_build(path, client_tools=plan.request.source == Conversation.Source.API)
    attached = {str(a.pk): a for a in plan.attachments}
    wanted = {i for message in built for i in message.get("attachment_ids", ())} - attached.keys()
    attached.update(attachments_named(wanted))  # earlier turns' (one query, only when they had any)
    # A file goes once per request (attachment_parts.py): counted at its newest mention, so that every
    # newest-first run of messages the window may keep counts each of its files once; another mention
    # costs a note.
    counted: set[str] = set()
    for message in reversed(built):
        ids = [i for i in message.get("attachment_ids", ()) if i in attached]
        message["extra_tokens"] = sum(
            mention_tokens(attached[i])
            if i in counted
            else attachment_tokens(attached[i], files_readable=plan.files_readable)
            for i in ids
        )
        counted.update(ids)
    kept, plan.context_dropped = context_fit(
        built,
        instructions=plan.answerer.instructions,
        input_limit=min(known) if known else None,
        reserve=int(plan.answerer.settings.get("max_tokens") or 0),
    )
    plan.upstream_messages = []
    for message in kept:
        sent = {
            key: message[key] for key in ("role", "content", "tool_calls", "tool_call_id") if key in message
        }
        if ids := [i for i in message.get("attachment_ids", ()) if i in attached]:
            sent["attachment_ids"] = ids
            plan.request_attachments.update((i, attached[i]) for i in ids)
        plan.upstream_messages.append(sent)


def _turn_of(plan: _TurnPlan, reply: Message) -> Turn:
    """The stored turn as the relay needs it: what the sockets are shown and what goes upstream."""
    user = plan.user_message
    shown = None
    if user is not None:
        siblings = thread_siblings([*plan.pairs, (user.pk, user.parent_id)])
        attached = {str(a.pk): attachment_as_dict(a) for a in plan.attachments}
        shown = message_as_dict(user, siblings=siblings, attachments=attached)
    return Turn(
        ref=plan.request.ref,
        user_message=shown,
        reply_id=reply.pk,
        parent_id=reply.parent_id,
        models=plan.answerer.models,
        mcp_servers=plan.answerer.mcp_servers,
        upstream_messages=plan.upstream_messages,
        context_dropped=plan.context_dropped,
        attachments=plan.request_attachments,
        files_readable=plan.files_readable,
        settings={**plan.answerer.settings, **plan.request.passthrough},
        model_settings=plan.answerer.model_settings,
        prices=plan.prices,
        instructions="\n\n".join(
            part for part in (plan.answerer.instructions, plan.request.instructions) if part
        ),
        agent=plan.answerer.agent_slug,
        title=plan.conversation.title if user is not None and user.parent_id is None else "",
        mcp_credentials=plan.mcp_credentials,
    )


class ReplyLapsed(Busy):
    """A turn found the conversation's reply still streaming, but with a lapsed lease: its server died.
    It must be stored as lost (with its reply log's text) before the turn can start."""

    default_detail = "The previous reply's server stopped; it is being stored. Send again."

    def __init__(self, reply_id: int) -> None:
        super().__init__()
        self.reply_id = reply_id


def streaming_reply_refuse(thread: ThreadState) -> None:
    """Raise Busy while a reply of the conversation streams, and ReplyLapsed when it
    streams under a lapsed lease (its server died: the caller stores it as lost, then may retry)."""
    if thread.streaming is None:
        return
    reply_id, lapsed = thread.streaming
    if lapsed:
        raise ReplyLapsed(reply_id)
    raise Busy()
