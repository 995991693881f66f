"""Who may use what: an agent or a model limited to groups answers their members alone, on every path
through the real socket (and real HTTP to the stand-in), the page's lists, shares and `agents_load`; a
user who leaves the group is refused at their very next message, as if the agent or model were not
there at all."""

from __future__ import annotations

import json
import re

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations.agents import own
from conversations.agents.definitions import AgentFileError, agents_load
from conversations.chat import turns
from conversations.exceptions import InvalidAgent
from conversations.models import Agent, ChatModel, Conversation, Message
from conversations.owners import ConversationRef, Owner
from conversations.protocol import TurnOptions

from .chat_sockets import reply_collect, socket_open
from .test_agent_form import form_data as agent_form_data
from .test_my_agent_turns import socket_of, user_browser

pytestmark = pytest.mark.django_db(transaction=True)

DEFAULT = "openai/gpt-5.1"
OPUS = "anthropic/claude-opus-4-5-20251101"
GEMINI = "google/gemini-3-pro-preview"


@sync_to_async
def group_of(name: str, *user_ids: int) -> Group:
    group = Group.objects.get_or_create(name=name)[0]
    group.user_set.add(*user_ids)
    return group


@sync_to_async
def group_leave(name: str, user_id: int) -> None:
    Group.objects.get(name=name).user_set.remove(user_id)


@sync_to_async
def agent_for(slug: str, *groups: Group, models: tuple[str, ...] = (DEFAULT,), **fields: object) -> Agent:
    agent = Agent.objects.create(slug=slug, name=slug.title(), model_names=list(models), **fields)
    agent.groups.set(groups)
    return agent


@sync_to_async
def model_limited(name: str, *groups: Group) -> None:
    ChatModel.objects.get(name=name).groups.set(groups)


async def refusal(tab, frame: dict) -> dict:
    """The error frame a refused message gets (no `start`: nothing was stored for it)."""
    await tab.send_json_to(frame)
    answer = await tab.receive_json_from(timeout=5)
    assert answer["type"] == "error", answer
    return answer


@pytest.fixture
async def legal(replies_settle) -> tuple[int, Client, int, Client]:
    """Alice, in the group `legal`, and Bob, in none; each signed in."""
    alice_id, alice = await user_browser("alice")
    bob_id, bob = await user_browser("bob")
    await group_of("legal", alice_id)
    return alice_id, alice, bob_id, bob


async def test_a_member_uses_a_group_agent_and_an_outsider_is_refused_as_for_a_missing_one(standin, legal):
    alice_id, alice, _, bob = legal
    await agent_for("counsel", await group_of("legal"))

    mine = await socket_of(alice, "/ws/chat/counsel-a/")
    await mine.send_json_to({"message": "is this contract sound?", "agent": "counsel"})
    assert (await reply_collect(mine))[-1]["type"] == "done"
    theirs = await socket_of(bob, "/ws/chat/counsel-b/")
    refused = await refusal(theirs, {"message": "and mine?", "agent": "counsel"})
    missing = await refusal(theirs, {"message": "and mine?", "agent": "nobody"})

    assert refused["code"] == missing["code"] == "unknown_agent"
    assert refused["message"] == missing["message"].replace("nobody", "counsel")
    assert len(standin.requests()) == 1
    assert not await Conversation.objects.filter(session_id="counsel-b").aexists()
    # The socket stays usable: an agent open to everyone answers Bob.
    await agent_for("helper")
    await theirs.send_json_to({"message": "hello", "agent": "helper"})
    assert (await reply_collect(theirs))[-1]["type"] == "done"
    await mine.disconnect()
    await theirs.disconnect()


async def test_superusers_and_anonymous_browsers_are_held_to_the_groups(standin, replies_settle):
    await agent_for("counsel", await group_of("legal"))
    root = await sync_to_async(get_user_model().objects.create_superuser)(
        "root", password="pw-for-tests-only"
    )
    operator = Client()
    await sync_to_async(operator.force_login)(root)

    as_root = await socket_of(operator, "/ws/chat/root-1/")
    anonymous = await socket_open("/ws/chat/anon-1/")
    for tab in (as_root, anonymous):
        assert (await refusal(tab, {"message": "hi", "agent": "counsel"}))["code"] == "unknown_agent"
    await group_of("legal", root.pk)
    await as_root.send_json_to({"message": "hi", "agent": "counsel"})
    assert (await reply_collect(as_root))[-1]["type"] == "done"
    await as_root.disconnect()
    await anonymous.disconnect()


async def test_leaving_the_group_refuses_the_very_next_message_regenerate_and_edit(standin, legal):
    alice_id, alice, _, _ = legal
    await agent_for("counsel", await group_of("legal"))
    tab = await socket_of(alice, "/ws/chat/counsel-a/")
    await tab.send_json_to({"message": "first", "agent": "counsel"})
    frames = await reply_collect(tab)
    assert frames[-1]["type"] == "done"
    reply_id = frames[0]["message_id"]
    question_id = (await Message.objects.aget(pk=reply_id)).parent_id

    await group_leave("legal", alice_id)

    refusals = [
        await refusal(tab, {"message": "second"}),  # the conversation's agent
        await refusal(tab, {"message": "second", "agent": "counsel"}),
        await refusal(tab, {"type": "regenerate", "message_id": reply_id}),
        await refusal(tab, {"type": "edit", "message_id": question_id, "message": "first, again"}),
    ]
    assert [frame["code"] for frame in refusals] == ["unknown_agent"] * 4
    assert len(standin.requests()) == 1
    assert await Message.objects.acount() == 2
    # Another answerer she may use still answers in the same conversation.
    await tab.send_json_to({"message": "second", "model": GEMINI})
    assert (await reply_collect(tab))[-1]["type"] == "done"
    await tab.disconnect()


async def test_a_model_limited_to_a_group_holds_for_frames_conversations_and_agents(standin, legal):
    alice_id, alice, _, bob = legal
    await model_limited(OPUS, await group_of("legal"))
    await agent_for("drafter", models=(OPUS,))  # open to everyone, but answers with the limited model
    bob_agent = await sync_to_async(own.own_agent_create)(
        (await get_user_model().objects.aget(username="bob")).pk, {"name": "Mine", "models": [DEFAULT]}
    )

    theirs = await socket_of(bob, "/ws/chat/opus-b/")
    refused = await refusal(theirs, {"message": "hi", "model": OPUS})
    missing = await refusal(theirs, {"message": "hi", "model": "no/such-model"})
    assert refused["code"] == missing["code"] == "unknown_model"
    assert refused["message"] == missing["message"].replace("no/such-model", OPUS)
    assert (await refusal(theirs, {"message": "hi", "agent": "drafter"}))["code"] == "unknown_model"
    # An own agent is held to the models its owner may use, when built and when it answers.
    with pytest.raises(InvalidAgent):
        await sync_to_async(own.own_agent_create)(
            (await get_user_model().objects.aget(username="bob")).pk, {"name": "Sly", "models": [OPUS]}
        )
    await Agent.owned.filter(slug=bob_agent["slug"]).aupdate(model_names=[OPUS])
    assert (await refusal(theirs, {"message": "hi", "agent": bob_agent["slug"]}))["code"] == "unknown_model"

    mine = await socket_of(alice, "/ws/chat/opus-a/")
    await mine.send_json_to({"message": "hi", "model": OPUS})
    assert (await reply_collect(mine))[-1]["type"] == "done"
    await group_leave("legal", alice_id)
    # Her conversation's model is refused, not quietly swapped for another.
    assert (await refusal(mine, {"message": "again"}))["code"] == "unknown_model"
    assert [request["body"]["model"] for request in standin.requests()] == [OPUS]
    await mine.disconnect()
    await theirs.disconnect()


async def test_a_default_agent_or_model_outside_a_users_groups_falls_back_to_what_they_may_use(
    standin, legal
):
    _, alice, _, bob = legal
    legal_group = await group_of("legal")
    await agent_for("counsel", legal_group, models=(GEMINI,), is_default=True)
    await model_limited(DEFAULT, legal_group)

    mine = await socket_of(alice, "/ws/chat/new-a/")
    theirs = await socket_of(bob, "/ws/chat/new-b/")
    assert mine.history["conversation"]["agent"] == "counsel"
    new_chat = theirs.history["conversation"]
    assert (new_chat["agent"], new_chat["model"]) == (None, OPUS)  # the first model Bob may use

    await theirs.send_json_to({"message": "hello"})
    assert (await reply_collect(theirs))[-1]["type"] == "done"
    (request,) = standin.requests()
    assert request["body"]["model"] == OPUS
    await mine.disconnect()
    await theirs.disconnect()


async def test_the_agent_list_and_the_page_offer_only_what_the_requester_may_use(legal):
    _, alice, _, bob = legal
    await agent_for("counsel", await group_of("legal"))
    await agent_for("helper")
    await model_limited(OPUS, await group_of("legal"))

    listed = {
        name: [agent["slug"] for agent in (await sync_to_async(browser.get)("/api/agents/")).json()["agents"]]
        for name, browser in (("alice", alice), ("bob", bob), ("anonymous", Client()))
    }
    assert listed == {"alice": ["counsel", "helper"], "bob": ["helper"], "anonymous": ["helper"]}

    def page_options(browser: Client) -> tuple[set[str], set[str]]:
        html = browser.get("/", follow=True).content.decode()
        return set(re.findall(r'value="agent:([^"]+)"', html)), {OPUS} & set(
            re.findall(r'value="([^"]+)"', html)
        )

    assert await sync_to_async(page_options)(alice) == ({"counsel", "helper"}, {OPUS})
    assert await sync_to_async(page_options)(bob) == ({"helper"}, set())


async def test_continuing_a_share_leaves_a_model_the_viewer_may_not_use_behind(standin, legal):
    _, alice, _, bob = legal
    await model_limited(OPUS, await group_of("legal"))
    mine = await socket_of(alice, "/ws/chat/shared-a/")
    await mine.send_json_to({"message": "plan a trip", "model": OPUS})
    assert (await reply_collect(mine))[-1]["type"] == "done"
    await mine.disconnect()
    url = (
        await sync_to_async(alice.post)("/c/shared-a/share", "{}", content_type="application/json")
    ).json()["url"]

    copy_id = (await sync_to_async(bob.post)(f"{url}continue"))["Location"].split("/")[2]
    copy = await Conversation.objects.aget(session_id=copy_id)
    assert copy.model == ""
    theirs = await socket_of(bob, f"/ws/chat/{copy_id}/")
    assert (await refusal(theirs, {"message": "go on", "model": OPUS}))["code"] == "unknown_model"
    await theirs.send_json_to({"message": "go on"})
    assert (await reply_collect(theirs))[-1]["type"] == "done"
    assert [request["body"]["model"] for request in standin.requests()] == [OPUS, DEFAULT]
    # A member continuing it keeps the model.
    alices_copy = (await sync_to_async(alice.post)(f"{url}continue"))["Location"].split("/")[2]
    assert (await Conversation.objects.aget(session_id=alices_copy)).model == OPUS
    await theirs.disconnect()


def test_agents_load_sets_groups_creating_missing_ones_and_refuses_bad_ones_with_the_rest():
    Group.objects.create(name="legal")
    created, updated = agents_load(
        [
            {"slug": "counsel", "name": "Counsel", "models": [DEFAULT], "groups": ["legal", "research"]},
            {"slug": "helper", "name": "Helper", "models": [DEFAULT], "groups": []},
        ]
    )
    assert (created, updated) == (2, 0)
    counsel = Agent.objects.get(slug="counsel")
    assert sorted(counsel.groups.values_list("name", flat=True)) == ["legal", "research"]
    assert not Agent.objects.get(slug="helper").groups.exists()

    agents_load([{"slug": "counsel", "name": "Counsel", "models": [DEFAULT]}])  # no key: kept
    assert counsel.groups.count() == 2
    with pytest.raises(AgentFileError) as refused:
        agents_load(
            [
                {"slug": "counsel", "name": "Counsel", "models": [DEFAULT], "groups": []},
                {"slug": "critic", "name": "Critic", "models": [DEFAULT], "groups": "legal"},
                {"slug": "judge", "name": "Judge", "models": ["no/such"], "groups": ["ok", " padded"]},
            ]
        )
    problems = refused.value.problems
    assert [problem.split(",")[0].split(":")[0] for problem in problems] == [
        "agents[1] (critic)",
        "agents[2] (judge)",
        "agents[2] (judge)",
    ]
    assert sum("field 'groups'" in problem for problem in problems) == 2
    assert counsel.groups.count() == 2  # nothing changed
    assert not Group.objects.filter(name="ok").exists()
    assert not Agent.objects.filter(slug__in=["critic", "judge"]).exists()


def test_the_admin_picks_groups_on_the_agent_form_and_the_chat_model_and_lists_who_may_use_them(
    staff_client,
):
    legal = Group.objects.create(name="legal")
    research = Group.objects.create(name="research")
    saved = staff_client.post(
        reverse("admin:conversations_agent_add"),
        agent_form_data(name="Counsel", slug="counsel", groups=[legal.pk, research.pk]),
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert sorted(Agent.objects.get(slug="counsel").groups.values_list("name", flat=True)) == [
        "legal",
        "research",
    ]
    Agent.objects.create(slug="helper", name="Helper", model_names=[DEFAULT])
    model = ChatModel.objects.get(name=OPUS)
    changed = staff_client.post(
        reverse("admin:conversations_chatmodel_change", args=[model.pk]),
        {
            "name": model.name,
            "label": model.label,
            "enabled": "on",
            "position": str(model.position),
            "capabilities": json.dumps(model.capabilities),
            "groups": [legal.pk],
        },
    )
    assert changed.status_code == 302, changed.content.decode()[:2000]
    assert list(model.groups.values_list("name", flat=True)) == ["legal"]

    agents = staff_client.get(reverse("admin:conversations_agent_changelist")).content.decode()
    models = staff_client.get(reverse("admin:conversations_chatmodel_changelist")).content.decode()
    assert re.search(r'field-who_may_use">legal, research<', agents)
    assert re.search(r'field-who_may_use">everyone<', agents)
    assert re.search(r'field-who_may_use">legal<', models)
    only_legal = staff_client.get(
        reverse("admin:conversations_agent_changelist"), {"groups__id__exact": legal.pk}
    )
    assert "Counsel" in only_legal.content.decode()
    assert "Helper" not in only_legal.content.decode()


def test_a_batch_of_turns_of_several_owners_holds_each_to_their_own_groups():
    """Turns stored together (a group commit) each get what their own owner may use."""
    legal = Group.objects.create(name="legal")
    Agent.objects.create(slug="counsel", name="Counsel", model_names=[DEFAULT]).groups.add(legal)
    ChatModel.objects.get(name=OPUS).groups.add(legal)
    alice, bob = (get_user_model().objects.create_user(name, password="pw") for name in ("alice", "bob"))
    legal.user_set.add(alice)

    def request(user_id: int | None, session_id: str, **options: object) -> turns.TurnRequest:
        owner = Owner(user_id=user_id, session_key="" if user_id else "batch-browser")
        return turns.TurnRequest(
            ref=ConversationRef(owner.key, session_id),
            owner=owner,
            options=TurnOptions(**options),
            streamed_by="here",
            content="hi",
        )

    results = turns.turns_store(
        [
            request(alice.pk, "a-agent", agent="counsel"),
            request(bob.pk, "b-agent", agent="counsel"),
            request(None, "n-agent", agent="counsel"),
            request(alice.pk, "a-model", model=OPUS),
            request(bob.pk, "b-model", model=OPUS),
            request(bob.pk, "b-open", model=GEMINI),
        ]
    )

    assert [type(result).__name__ for result in results] == [
        "Turn",
        "UnknownAgent",
        "UnknownAgent",
        "Turn",
        "UnknownModel",
        "Turn",
    ]


def test_a_batch_reads_the_groups_in_a_fixed_number_of_statements_whatever_its_owners():
    """Groups cost a batch one more read per kind limited (agents, models), not one per owner: the
    reads of agents and models (each marked limited or not), then their members among the owners; and
    budgets one read, of the owners some budget caps (theirs or a group's)."""
    legal = Group.objects.create(name="legal")
    Agent.objects.create(slug="counsel", name="Counsel", model_names=[DEFAULT]).groups.add(legal)
    ChatModel.objects.get(name=OPUS).groups.add(legal)
    users = [get_user_model().objects.create_user(f"user{i}", password="pw") for i in range(12)]
    legal.user_set.add(*users[::2])

    def statements(count: int) -> int:
        requests = [
            turns.TurnRequest(
                ref=ConversationRef(Owner(user_id=user.pk).key, f"{count}-{user.pk}"),
                owner=Owner(user_id=user.pk),
                options=TurnOptions(agent="counsel"),
                streamed_by="here",
                content="hi",
            )
            for user in users[:count]
        ]
        with CaptureQueriesContext(connection) as queries:
            results = turns.turns_store(requests)
        assert [type(result).__name__ for result in results] == ["Turn", "UnknownAgent"] * (count // 2)
        return sum('_groups"' in query["sql"] for query in queries.captured_queries)

    assert statements(2) == statements(12) == 5
