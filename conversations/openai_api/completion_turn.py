"""What a chat completion request asks for, read and checked before anything is stored: its key (401,
its rate), its body (400), who answers (404, 403) and which API conversation it goes on (404), made into
the turn the relay stores. One service call on one worker thread: a request costs one hop off the event
loop before its turn, not one per read."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from django.http import HttpRequest

from ..apikeys.offers import key_offer, key_scope_allows
from ..chat.api_threads import (
    ApiBranch,
    api_conversation_continued,
    api_conversation_exists,
    api_history_branch,
)
from ..chat.turns import BRANCH, SEND, PriorMessage, TurnRequest
from ..exceptions import ConversationNotFound, ModelNotAllowed, ModelNotFound
from ..models import ApiKey, Conversation
from ..owners import ConversationRef, Owner
from ..protocol import TurnOptions
from ..validators import SESSION_ID_PATTERN
from .auth import request_key
from .completion_request import CompletionRequest, completion_request_parse

CONVERSATION_HEADER = "X-Conversation-Id"


@dataclass(frozen=True, slots=True)
class CompletionTurn:
    parsed: CompletionRequest
    turn: TurnRequest

    @property
    def session_id(self) -> str:
        return self.turn.ref.session_id


def completion_turn(request: HttpRequest, *, streamed_by: str) -> CompletionTurn:
    """The turn `request` asks for, to be streamed by instance `streamed_by`; raise the ChatError that
    refuses it. Not retried: the key's rate counts each call."""
    key = request_key(request)
    parsed = completion_request_parse(request.body)
    options = _options(key, parsed)
    owner = Owner(user_id=key.user_id)
    asked = request.headers.get(CONVERSATION_HEADER, "").strip()
    session_id, branch = _conversation_pick(owner_key=owner.key, asked=asked, history=parsed.history)
    continued = session_id is not None
    turn = TurnRequest(
        ref=ConversationRef(owner.key, session_id or uuid.uuid4().hex),
        owner=owner,
        options=options,
        streamed_by=streamed_by,
        content=parsed.content,
        source=Conversation.Source.API,
        kind=SEND if branch is None else BRANCH,
        target_id=None if branch is None else branch.parent_id,
        preceding=branch.preceding if branch is not None else () if continued else tuple(parsed.history),
        tool_results=tuple(parsed.tool_results),
        instructions=parsed.instructions,
        passthrough=parsed.passthrough,
    )
    return CompletionTurn(parsed, turn)


def _options(key: ApiKey, parsed: CompletionRequest) -> TurnOptions:
    """Who answers: the agent or model `model` names among what the key may use; 404 for what the
    user may not use, 403 for what the key's scope leaves out."""
    offer = key_offer(key, parsed.model)
    if offer is None:
        raise ModelNotFound(
            f"The model {parsed.model[:200]!r} does not exist or you do not have access to it.",
            param="model",
        )
    if not key_scope_allows(key, offer):
        raise ModelNotAllowed(f"This API key may not use {parsed.model[:200]!r}.", param="model")
    if offer.agent:
        return TurnOptions(agent=offer.id, settings=parsed.settings)
    return TurnOptions(model=offer.id, mcp_servers=[], settings=parsed.settings)


def _conversation_pick(
    owner_key: str, asked: str, history: list[PriorMessage]
) -> tuple[str | None, ApiBranch | None]:
    """The API conversation the request continues (None: a new one): the one its header names, else the
    one its history repeats; and, in the one its header names, the branch its history makes when it
    leaves the stored one (None: it goes on from the active branch's leaf)."""
    if asked:
        if not re.fullmatch(SESSION_ID_PATTERN, asked) or not api_conversation_exists(
            owner_key=owner_key, session_id=asked
        ):
            raise ConversationNotFound(param=CONVERSATION_HEADER)
        return asked, api_history_branch(owner_key=owner_key, session_id=asked, history=history)
    return api_conversation_continued(owner_key=owner_key, history=history), None
