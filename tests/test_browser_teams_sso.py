"""Teams end to end, in chromium: a chat server whose identity provider and groups claim come from its
environment (`CHAT_OIDC_PROVIDERS`, `CHAT_OIDC_GROUPS_CLAIM`, `CHAT_OIDC_GROUP_MAP`), a real OpenID Connect
provider on loopback (tests/oidc_idp), and an operator's agent limited to a group by `manage.py
agents_load`. A member at the provider signs in through it and uses the agent on the page and through an
API key; dropped from the group at the provider, their next sign-in loses the agent on the page, the
socket and the API alike. A budget set on the provider's group by `manage.py budget_set` refuses their
message once spent, on the page."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from . import browser
from .oidc_provider import PASSWORD, OidcProvider
from .openai_clients import api_server_start
from .processes import ROOT, DaphneServer
from .standin_control import StandIn

PROVIDER_ID, PROVIDER_NAME = "corp", "Corp SSO"
CLIENT_ID, CLIENT_SECRET = "chat", "client-secret-for-tests"
CALLBACK = f"/accounts/oidc/{PROVIDER_ID}/login/callback/"
GROUP_AT_PROVIDER, GROUP = "chat-research", "Research"  # the claim's value, and the chat's group it maps to
AGENTS_FILE = f"""\
agents:
  - slug: scholar
    name: Scholar
    models: [openai/gpt-5.1]
    groups: [{GROUP}]
  - slug: helper
    name: Helper
    models: [openai/gpt-5.1]
"""
HI = [{"role": "user", "content": "hi"}]

# A socket of the page's own origin and cookies, as a second tab would open it: one message frame,
# answered by the frames up to its end.
FRAME_SEND = """async ([url, frame]) => {
    const socket = new WebSocket(url);
    const frames = [];
    await new Promise((resolve, reject) => {
        socket.onerror = reject;
        socket.onmessage = (event) => {
            const got = JSON.parse(event.data);
            frames.push(got);
            if (got.type === "history") socket.send(JSON.stringify(frame));
            if (got.type === "done" || got.type === "error") resolve();
        };
    });
    socket.close();
    return frames.filter((got) => got.type !== "history");
}"""


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    provider = OidcProvider(Path(tmp_path_factory.mktemp("oidc-provider"))).start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def sso_server(
    standin_server: StandIn,
    oidc_provider: OidcProvider,
    tmp_path_factory: pytest.TempPathFactory,
    django_db_setup: None,
) -> Iterator[DaphneServer]:
    """The chat as an operator deploys it: single sign-on and the groups claim from its environment."""
    providers = [
        {
            "id": PROVIDER_ID,
            "name": PROVIDER_NAME,
            "issuer": oidc_provider.issuer,
            "client_id": CLIENT_ID,
            "secret": CLIENT_SECRET,
        }
    ]
    server = api_server_start(
        standin_server,
        Path(tmp_path_factory.mktemp("teams-sso-logs")),
        "teams-sso",
        CHAT_OIDC_PROVIDERS=json.dumps(providers),
        CHAT_OIDC_GROUPS_CLAIM="groups",
        CHAT_OIDC_GROUP_MAP=json.dumps({GROUP_AT_PROVIDER: GROUP}),
        CHAT_API_KEY_RATE_LIMIT="0",
        CHAT_TITLE_MODEL="",
    )
    oidc_provider.client_set(CLIENT_ID, CLIENT_SECRET, server.url(CALLBACK))
    yield server
    server.stop()


class TeamsThroughSingleSignOnTests(browser.ChatBrowserTestCase):
    server: DaphneServer
    provider: OidcProvider

    @property
    def live_server_url(self) -> str:  # type: ignore[override]
        """The page's helpers speak to the chat configured from its environment, not the class's fork."""
        return self.server.origin

    @pytest.fixture(autouse=True)
    def servers_ready(self, sso_server: DaphneServer, oidc_provider: OidcProvider, tmp_path: Path) -> None:
        self.server, self.provider = sso_server, oidc_provider
        agents = tmp_path / "agents.yaml"
        agents.write_text(AGENTS_FILE)
        self.manage("agents_load", str(agents))

    def manage(self, *args: str) -> str:
        """`manage.py` as the operator runs it beside the server: its environment, the same database."""
        assert self.server.env is not None
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            env=self.server.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def provider_sign_in(self, username: str) -> None:
        """The chat's sign-in page, its provider's button, the provider's form when it has no session of its
        own yet, and back in a new chat, signed in."""
        start = f"{self.live_server_url}/accounts/login/?next=/"
        self.page.goto(start)
        self.page.get_by_role("button", name=f"Log in with {PROVIDER_NAME}").click()
        self.page.wait_for_url(lambda url: url != start)
        if self.page.url.startswith(self.provider.issuer):
            self.page.get_by_label("Username").fill(username)
            self.page.get_by_label("Password").fill(PASSWORD)
            self.page.get_by_role("button", name="Sign In").click()
        expect(self.page).to_have_url(browser.CHAT_URL_RE)
        expect(self.page.locator(".account-name")).to_have_text(username)
        expect(self.page.locator("#connection")).to_have_text("connected")

    def log_out(self) -> None:
        self.page.get_by_role("button", name="Log out").click()
        expect(self.page.get_by_role("link", name="Log in")).to_be_visible()

    def agents_offered(self) -> Any:
        return expect(self.page.locator("#model option[value^='agent:']"))

    def api_key_make(self) -> str:
        """A key made on the page's *API keys* dialog, as its user makes one."""
        self.page.locator("#api-keys-open").click()
        self.page.locator("#api-key-name").fill("notebook")
        self.page.get_by_role("button", name="Create key").click()
        expect(self.page.locator("#api-key-value")).to_have_value(re.compile(r"^dck_"))
        key = self.page.locator("#api-key-value").input_value()
        self.page.keyboard.press("Escape")
        return key

    def frame_send(self, frame: dict[str, Any]) -> list[dict[str, Any]]:
        match = browser.CHAT_URL_RE.search(self.page.url)
        assert match is not None
        url = self.server.ws_url(match[1]).replace("http://", "ws://")
        return self.page.evaluate(FRAME_SEND, [url, frame])

    def test_the_providers_group_gives_the_agent_and_dropping_it_there_takes_it_everywhere(self) -> None:
        sub = self.provider.user_set("ada", groups=GROUP_AT_PROVIDER)
        self.provider_sign_in("ada")
        ada = SocialAccount.objects.get(provider=PROVIDER_ID, uid=sub).user
        assert list(ada.groups.values_list("name", flat=True)) == [GROUP]

        self.agents_offered().to_have_text(["Helper", "Scholar"])
        self.page.locator("#model").select_option("agent:scholar")
        self.message_send("What does the literature say?")
        reply = self.reply_finished(0)
        expect(reply).to_have_class(re.compile(r"\bcomplete\b"))
        expect(reply.locator(".content")).not_to_be_empty()

        key = self.api_key_make()
        api = openai.OpenAI(api_key=key, base_url=f"{self.live_server_url}/v1", max_retries=0)
        assert {"scholar", "helper"} <= {model.id for model in api.models.list()}
        assert api.chat.completions.create(model="scholar", messages=HI).choices[0].message.content

        # At the provider, ada leaves the group; the chat learns it at her next sign-in.
        self.provider.user_set("ada", groups="")
        self.log_out()
        self.provider_sign_in("ada")
        assert not ada.groups.exists()

        self.agents_offered().to_have_text(["Helper"])
        refused = self.frame_send({"message": "still there?", "agent": "scholar"})
        missing = self.frame_send({"message": "still there?", "agent": "no-such-agent"})
        assert [frame["type"] for frame in refused] == ["error"]
        assert refused[0]["code"] == missing[0]["code"] == "unknown_agent"
        assert refused[0]["message"] == missing[0]["message"].replace("no-such-agent", "scholar")

        assert "scholar" not in {model.id for model in api.models.list()}
        with pytest.raises(openai.NotFoundError) as lost:
            api.chat.completions.create(model="scholar", messages=HI)
        with pytest.raises(openai.NotFoundError) as absent:
            api.chat.completions.create(model="no-such-agent", messages=HI)
        assert lost.value.body == {
            **absent.value.body,
            "message": absent.value.body["message"].replace("no-such-agent", "scholar"),
        }
        assert get_user_model().objects.count() == 1  # the same account throughout: its sub

    def test_a_budget_on_the_providers_group_refuses_the_members_message_once_spent(self) -> None:
        self.provider.user_set("bea", groups=GROUP_AT_PROVIDER)
        self.provider_sign_in("bea")
        # Per month: the two messages fall in one period but across the first of a month at midnight.
        self.manage("budget_set", "--group", GROUP, "--tokens", "1", "--per", "month")

        self.message_send("one question")  # nothing spent yet: it goes, and spends more than the cap
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        self.message_send("and another")
        expect(self.page.get_by_role("alert")).to_have_text(
            re.compile(
                rf"^Error: The budget of your group {GROUP} of 1 token per calendar month \(UTC\) is spent; "
            )
        )
        expect(self.page.locator("#budget-left")).to_have_text(
            re.compile(rf"^You have spent the budget of your group {GROUP} this month; it resets at")
        )
        expect(self.bubbles("assistant")).to_have_count(1)
