"""Who may use what, through OpenAI's own client against a live Daphne: an agent or a model limited to a
group is listed by /v1/models and answers chat completions for its members' keys alone, is refused to
anyone else's as a missing one is, and is lost through every key, scoped or not, the moment its user
leaves the group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from conversations.models import Agent, ChatModel

from .openai_clients import client, completions_server, key_for
from .processes import DaphneServer
from .standin_control import StandIn

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

MODEL = "openai/gpt-5.1"
OPUS = "anthropic/claude-opus-4-5-20251101"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def api_server(
    standin_server: StandIn, tmp_path_factory: pytest.TempPathFactory, django_db_setup: None
) -> Iterator[DaphneServer]:
    logs = Path(tmp_path_factory.mktemp("teams-access-logs"))
    server = completions_server(standin_server, logs, messages_per_minute=20)
    yield server
    server.stop()


@pytest.fixture
def legal() -> Group:
    """The group `legal`, whose only member is ada; the agent `counsel` and Opus are for it alone."""
    group = Group.objects.create(name="legal")
    Agent.objects.create(slug="counsel", name="Counsel", model_names=[MODEL]).groups.add(group)
    ChatModel.objects.get(name=OPUS).groups.add(group)
    key_for("ada")  # makes the user
    group.user_set.add(get_user_model().objects.get(username="ada"))
    return group


def listed(api: openai.OpenAI) -> list[str]:
    return [model.id for model in api.models.list().data]


def test_members_keys_list_and_use_what_the_group_gives_and_others_are_refused_as_for_nothing(
    api_server: DaphneServer, legal: Group
) -> None:
    member = client(api_server, key_for("ada"))
    outsider = client(api_server, key_for("bob"))

    assert {"counsel", OPUS} <= set(listed(member))
    assert not {"counsel", OPUS} & set(listed(outsider))
    assert member.chat.completions.create(model="counsel", messages=HI).choices[0].message.content
    assert member.chat.completions.create(model=OPUS, messages=HI).model == OPUS
    for name in ("counsel", OPUS):
        with pytest.raises(openai.NotFoundError) as refused:
            outsider.chat.completions.create(model=name, messages=HI)
        with pytest.raises(openai.NotFoundError) as missing:
            outsider.chat.completions.create(model="no-such-agent", messages=HI)
        assert refused.value.body == {
            **missing.value.body,
            "message": missing.value.body["message"].replace("no-such-agent", name),
        }


def test_leaving_the_group_loses_it_through_every_key_at_the_next_request(
    api_server: DaphneServer, legal: Group
) -> None:
    whole = client(api_server, key_for("ada"))
    scoped = client(api_server, key_for("ada", scope=["counsel"]))
    assert listed(scoped) == ["counsel"]
    assert scoped.chat.completions.create(model="counsel", messages=HI).choices[0].message.content

    legal.user_set.remove(get_user_model().objects.get(username="ada"))

    assert listed(scoped) == []
    assert not {"counsel", OPUS} & set(listed(whole))
    for api, name in ((scoped, "counsel"), (whole, "counsel"), (whole, OPUS)):
        with pytest.raises(openai.NotFoundError) as refused:
            api.chat.completions.create(model=name, messages=HI)
        assert refused.value.body["code"] == "model_not_found"
