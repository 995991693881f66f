"""Single sign-on through a real OpenID Connect provider (tests/oidc_idp: django-allauth's provider, on
loopback), in Chromium: the account its `sub` names, made at the first sign-in; the anonymous chats handed
over; the provider's groups synced, a hand-given one kept; staff from the claim; no account joined by an
unverified e-mail; the provider's errors and a forged state told plainly; logout closing the sockets; and
the sign-in page with its buttons, axe-clean."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import override_settings
from playwright.sync_api import Page, expect

from conversations.models import Conversation, ProviderGroupGrant

from . import browser
from .oidc_provider import PASSWORD, OidcProvider
from .test_browser_accessibility import severe_violations

PROVIDER_ID = "testidp"
PROVIDER_NAME = "Test provider"
CLIENT_ID, CLIENT_SECRET = "chat", "client-secret-for-tests"
CALLBACK = f"/accounts/oidc/{PROVIDER_ID}/login/callback/"


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    provider = OidcProvider(Path(tmp_path_factory.mktemp("oidc-provider"))).start()
    yield provider
    provider.stop()


# The live server is forked in setUpClass, after the class's settings are on: it has these.
@override_settings(
    CHAT_OIDC_GROUPS_CLAIM="groups",
    CHAT_OIDC_GROUP_MAP={"ops": "Operations"},
    CHAT_OIDC_STAFF_VALUE="chat-admins",
)
class SingleSignOnTests(browser.ChatBrowserTestCase):
    provider: OidcProvider

    @pytest.fixture(autouse=True)
    def provider_configured(self, oidc_provider: OidcProvider) -> None:
        """The provider as the admin's *Social applications* sets it up (rows of the test database, which
        the live server reads), and the chat as the provider's client, with its exact redirect URI."""
        self.provider = oidc_provider
        SocialApp.objects.create(
            provider="openid_connect",
            provider_id=PROVIDER_ID,
            name=PROVIDER_NAME,
            client_id=CLIENT_ID,
            secret=CLIENT_SECRET,
            settings={"server_url": oidc_provider.issuer, "oauth_pkce_enabled": True},
        )
        oidc_provider.client_set(CLIENT_ID, CLIENT_SECRET, f"{self.live_server_url}{CALLBACK}")

    def provider_sign_in(self, username: str, *, page: Page | None = None, next_path: str = "/") -> None:
        """From the chat's sign-in page, through the provider's (its form, when it has no session of its
        own yet), back to the chat."""
        page = page or self.page
        page.goto(f"{self.live_server_url}/accounts/login/?next={next_path}")
        page.get_by_role("button", name=f"Log in with {PROVIDER_NAME}").click()
        page.wait_for_url(
            re.compile(rf"^{re.escape(self.provider.issuer)}/|^{re.escape(self.live_server_url)}/c/")
        )
        if page.url.startswith(self.provider.issuer):
            page.get_by_label("Username").fill(username)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign In").click()

    def signed_in_as(self, username: str, page: Page | None = None) -> None:
        page = page or self.page
        expect(page).to_have_url(browser.CHAT_URL_RE)
        expect(page.locator(".account-name")).to_have_text(username)
        expect(page.locator("#connection")).to_have_text("connected")

    def log_out(self) -> None:
        self.page.get_by_role("button", name="Log out").click()
        expect(self.page.get_by_role("link", name="Log in")).to_be_visible()

    def test_a_first_sign_in_makes_the_account_of_the_sub_and_hands_over_the_anonymous_chats(self) -> None:
        sub = self.provider.user_set("ada", email="ada@example.org", email_verified=True, groups="")
        session_id = self.chat_open()
        self.message_send("before signing in")
        self.reply_finished(0)
        self.page.get_by_role("link", name="Log in").click()

        self.provider_sign_in("ada", next_path=f"/c/{session_id}/")
        expect(self.page).to_have_url(f"{self.live_server_url}/c/{session_id}/")
        self.signed_in_as("ada")
        expect(self.bubbles("user").first).to_contain_text("before signing in")

        account = SocialAccount.objects.get(provider=PROVIDER_ID)
        assert account.uid == sub
        user = account.user
        assert (user.username, user.email) == ("ada", "ada@example.org")
        assert Conversation.objects.get(session_id=session_id).user_id == user.pk

    def test_the_sub_names_the_account_whatever_the_name_and_e_mail_and_the_groups_follow_the_provider(
        self,
    ) -> None:
        self.provider.user_set(
            "bea", email="bea@example.org", email_verified=True, groups="eng,ops,chat-admins"
        )
        self.provider_sign_in("bea")
        self.signed_in_as("bea")
        user = get_user_model().objects.get(username="bea")
        assert set(user.groups.values_list("name", flat=True)) == {"eng", "Operations", "chat-admins"}
        assert user.is_staff
        assert not user.is_superuser
        expect(self.page.get_by_role("link", name="Admin")).to_be_visible()
        user.groups.add(Group.objects.create(name="by-hand"))  # the operator, in the admin
        self.log_out()

        # At the provider: a new name and e-mail, out of `ops` and of the admins.
        self.provider.user_set(
            "bea", rename="beatrice", email="b@example.net", email_verified=True, groups="eng"
        )
        self.provider_sign_in("beatrice")
        self.signed_in_as("bea")  # the same account: its sub did not change
        user.refresh_from_db()
        assert get_user_model().objects.count() == 1
        assert set(user.groups.values_list("name", flat=True)) == {"eng", "by-hand"}
        assert set(ProviderGroupGrant.objects.values_list("group__name", flat=True)) == {"eng"}
        assert not user.is_staff
        expect(self.page.get_by_role("link", name="Admin")).to_have_count(0)

    def test_an_unverified_e_mail_of_an_existing_account_joins_nothing(self) -> None:
        owner = get_user_model().objects.create_user("cleo", email="cleo@example.org", password="local-pw")
        self.provider.user_set("cleo", email="cleo@example.org", groups="")  # not verified
        self.provider_sign_in("cleo")
        expect(self.page).to_have_url(browser.CHAT_URL_RE)
        account = SocialAccount.objects.get(provider=PROVIDER_ID)
        assert account.user_id != owner.pk
        assert account.user.username != "cleo"
        assert account.user.email == ""
        assert not SocialAccount.objects.filter(user=owner).exists()

    def test_logging_out_closes_the_sockets_of_the_session_as_every_logout_does(self) -> None:
        self.provider.user_set("dora", groups="")
        self.provider_sign_in("dora")
        self.signed_in_as("dora")
        other_tab = self.page.context.new_page()
        other_tab.goto(f"{self.live_server_url}/")
        self.signed_in_as("dora", other_tab)

        self.log_out()
        # Its socket closed (4401), the other tab loads again, signed out.
        expect(other_tab.get_by_role("link", name="Log in")).to_be_visible()

    def test_the_providers_refusal_is_told_plainly_on_the_sign_in_page(self) -> None:
        self.provider.client_set(CLIENT_ID, CLIENT_SECRET, f"{self.live_server_url}{CALLBACK}", consent=True)
        self.provider.user_set("eve", groups="")
        self.provider_sign_in("eve")
        self.page.get_by_role("button", name="Cancel").click()
        expect(self.page).to_have_url(re.compile(r"/accounts/login/"))
        expect(self.page.get_by_role("alert")).to_have_text(
            re.compile(rf"^Sign-in with {PROVIDER_NAME} failed: the provider answered access_denied")
        )
        assert not get_user_model().objects.exists()

    def test_a_callback_this_browser_did_not_start_is_refused_plainly(self) -> None:
        self.page.goto(f"{self.live_server_url}{CALLBACK}?code=stolen&state=forged")
        expect(self.page).to_have_url(re.compile(r"/accounts/login/"))
        expect(self.page.get_by_role("alert")).to_contain_text("its state does not match")
        assert not get_user_model().objects.exists()

    def test_the_sign_in_page_with_its_provider_button_is_accessible(self) -> None:
        self.page.goto(f"{self.live_server_url}/accounts/login/")
        expect(self.page.get_by_role("button", name=f"Log in with {PROVIDER_NAME}")).to_be_visible()
        self.screenshot_save("sign-in-with-provider.png")
        assert not severe_violations(self.page)
