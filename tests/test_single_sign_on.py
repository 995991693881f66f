"""Single sign-on through a real OpenID Connect provider (tests/oidc_idp: django-allauth's provider, on
loopback), in Chromium: the account its `sub` names, made at the first sign-in; the anonymous chats handed
over; the provider's groups synced, a hand-given one kept; staff from the claim; no account joined by an
unverified e-mail; the provider's errors and a forged state told plainly; logout closing the sockets; and
the sign-in page with its buttons, axe-clean."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import override_settings
from playwright.sync_api import Page, expect

from conversations.accounts.passwords import PasswordLoginBackend
from conversations.accounts.provider_groups import CLAIM_VALUES_MAX, provider_groups_sync
from conversations.models import Conversation, ProviderGroupGrant

from . import browser
from .oidc_provider import PASSWORD, OidcProvider
from .processes import ROOT
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
        start = f"{self.live_server_url}/accounts/login/?next={next_path}"
        page.goto(start)
        page.get_by_role("button", name=f"Log in with {PROVIDER_NAME}").click()
        page.wait_for_url(lambda url: url != start)  # at the provider, or back already
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

    def test_a_wrong_client_secret_is_told_plainly(self) -> None:
        SocialApp.objects.filter(provider_id=PROVIDER_ID).update(secret="not-the-secret")
        self.provider.user_set("ivy", groups="")
        self.provider_sign_in("ivy")
        expect(self.page).to_have_url(re.compile(r"/accounts/login/$"))
        expect(self.page.get_by_role("alert")).to_have_text(
            re.compile(rf"^Sign-in with {PROVIDER_NAME} failed: .*invalid_client")
        )
        assert not get_user_model().objects.exists()

    def test_the_provider_sends_nobody_back_to_a_redirect_uri_it_was_not_given_exactly(self) -> None:
        # The same client, under another provider id: its callback is not the one the provider knows.
        SocialApp.objects.filter(provider_id=PROVIDER_ID).update(provider_id="elsewhere", name="Elsewhere")
        self.provider.user_set("jan", groups="")
        self.page.goto(f"{self.live_server_url}/accounts/login/")
        self.page.get_by_role("button", name="Log in with Elsewhere").click()
        expect(self.page).to_have_url(re.compile(rf"^{re.escape(self.provider.issuer)}/"))
        self.page.get_by_label("Username").fill("jan")
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign In").click()
        expect(self.page.locator("body")).to_contain_text("Mismatching redirect URI.")
        asked = parse_qs(urlsplit(self.page.url).query)  # the authorisation request, as the client made it
        assert asked["code_challenge_method"] == ["S256"]
        assert asked["code_challenge"]
        assert asked["state"]
        assert self.page.url.startswith(self.provider.issuer)  # nobody was sent back
        assert not get_user_model().objects.exists()

    def test_an_app_set_up_to_name_accounts_by_another_claim_than_sub_signs_nobody_in(self) -> None:
        app = SocialApp.objects.get(provider_id=PROVIDER_ID)
        app.settings = {**app.settings, "uid_field": "preferred_username"}
        app.save()
        self.provider.user_set("kai", groups="")
        self.provider_sign_in("kai")
        expect(self.page).to_have_url(re.compile(r"/accounts/login/$"))
        expect(self.page.get_by_role("alert")).to_have_text(re.compile("does not name its user by sub alone"))
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

    def test_an_account_deactivated_in_the_admin_is_refused_plainly(self) -> None:
        self.provider.user_set("fay", groups="")
        self.provider_sign_in("fay")
        self.signed_in_as("fay")
        self.log_out()
        get_user_model().objects.filter(username="fay").update(is_active=False)

        self.provider_sign_in("fay")
        expect(self.page).to_have_url(re.compile(r"/accounts/login/"))
        expect(self.page.get_by_role("alert")).to_have_text(re.compile("This account is inactive"))

    def test_a_signed_in_user_cannot_attach_a_providers_account_to_their_own(self) -> None:
        """allauth's sign-in view also takes `process=connect` (attach the provider's account to the one
        signed in) and `process=redirect`: a sub would then name an account its first sign-in did not
        make. Only signing in is done; the rest is refused at the callback, attaching nothing."""
        get_user_model().objects.create_user("lou", password="local-pw-for-tests")
        self.page.goto(f"{self.live_server_url}/accounts/login/")
        self.page.get_by_label("Username").fill("lou")
        self.page.get_by_label("Password").fill("local-pw-for-tests")
        self.page.get_by_role("button", name="Log in", exact=True).click()
        self.signed_in_as("lou")
        self.provider.user_set("lou-at-the-provider", groups="")
        # The form the page's CSP would not let a page of the chat send on to the provider, posted as it.
        token = next(c["value"] for c in self.page.context.cookies() if c["name"] == "csrftoken")
        started = self.page.context.request.post(
            f"{self.live_server_url}/accounts/oidc/{PROVIDER_ID}/login/",
            form={"csrfmiddlewaretoken": token, "process": "connect"},
            max_redirects=0,
        )
        assert started.status == 302
        self.page.goto(started.headers["location"])
        expect(self.page).to_have_url(re.compile(rf"^{re.escape(self.provider.issuer)}/"))
        self.page.get_by_label("Username").fill("lou-at-the-provider")
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign In").click()
        self.signed_in_as("lou")  # back on the chat, still the local account
        assert not SocialAccount.objects.exists()

    def test_the_admin_pages_of_single_sign_on_are_accessible(self) -> None:
        self.provider.user_set("gil", groups="eng")
        self.provider_sign_in("gil")
        self.signed_in_as("gil")
        self.log_out()
        get_user_model().objects.create_superuser("ops", password="pw-for-tests-only")
        self.page.goto(f"{self.live_server_url}/admin/login/?next=/admin/")
        self.page.get_by_label("Username").fill("ops")
        self.page.get_by_label("Password").fill("pw-for-tests-only")
        self.page.get_by_role("button", name="Log in").click()
        for path in (
            "/admin/socialaccount/socialapp/add/",
            "/admin/socialaccount/socialaccount/",
            "/admin/conversations/providergroupgrant/",
            "/admin/auth/group/",
        ):
            self.page.goto(f"{self.live_server_url}{path}")
            expect(self.page.locator("#content")).to_be_visible()
            assert not severe_violations(self.page), path
        expect(self.page.get_by_role("link", name="eng")).to_be_visible()


# --- Without a browser: the settings, passwords off, the claim's sync ---

OIDC_ENV = {
    "CHAT_OIDC_PROVIDERS": json.dumps(
        [
            {
                "id": "corp",
                "name": "Corp SSO",
                "issuer": "https://sso.example.com/realms/corp/",
                "client_id": "c",
                "secret": "s",
            }
        ]
    )
}


def settings_loaded(**env: str) -> subprocess.CompletedProcess[str]:
    """Import the settings in a fresh interpreter with `env` added, as a start-up does."""
    return subprocess.run(
        [sys.executable, "-c", "import chatproject.settings as s; print(s.SOCIALACCOUNT_PROVIDERS)"],
        env={**os.environ, "DJANGO_SECRET_KEY": "x", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_providers_come_from_the_environment_with_pkce() -> None:
    loaded = settings_loaded(**OIDC_ENV)
    assert loaded.returncode == 0, loaded.stderr
    app = ast.literal_eval(loaded.stdout)["openid_connect"]["APPS"][0]
    assert app["provider_id"] == "corp"
    assert app["client_id"] == "c"
    assert app["secret"] == "s"
    assert app["settings"] == {
        "server_url": "https://sso.example.com/realms/corp",
        "oauth_pkce_enabled": True,
    }


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"CHAT_OIDC_PROVIDERS": "[{"}, "CHAT_OIDC_PROVIDERS must be JSON"),
        ({"CHAT_OIDC_PROVIDERS": '[{"id": "x"}]'}, "CHAT_OIDC_PROVIDERS must be a JSON list"),
        (
            {"CHAT_OIDC_PROVIDERS": OIDC_ENV["CHAT_OIDC_PROVIDERS"].replace('"corp"', '"a/b"')},
            "id is 1 to 40",
        ),
        ({"CHAT_OIDC_GROUP_MAP": '{"a": 1}'}, "CHAT_OIDC_GROUP_MAP must be a JSON object"),
        ({"CHAT_OIDC_STAFF_VALUE": "admins"}, "need CHAT_OIDC_GROUPS_CLAIM"),
    ],
)
def test_a_wrong_single_sign_on_setting_stops_the_start_naming_it(env: dict[str, str], said: str) -> None:
    loaded = settings_loaded(**env)
    assert loaded.returncode != 0
    assert "ImproperlyConfigured" in loaded.stderr
    assert said in loaded.stderr


def corp_provider(server_url: str) -> dict[str, object]:
    """SOCIALACCOUNT_PROVIDERS with one OpenID Connect app, `corp`, whose issuer is `server_url`."""
    app = {"provider_id": "corp", "name": "Corp SSO", "client_id": "c", "secret": "s"}
    return {"openid_connect": {"APPS": [{**app, "settings": {"server_url": server_url}}]}}


@pytest.mark.django_db
def test_the_sign_in_page_has_a_button_for_each_configured_provider(client, settings) -> None:
    settings.SOCIALACCOUNT_PROVIDERS = corp_provider("https://sso.example.com/realms/corp")
    page = client.get("/accounts/login/?next=/c/abc/")
    html = page.content.decode()
    assert 'action="/accounts/oidc/corp/login/"' in html
    assert "Log in with Corp SSO" in html
    assert 'name="password"' in html
    # The button's form may be redirected to the provider, and nowhere else.
    assert "form-action 'self' https://sso.example.com;" in page.headers["Content-Security-Policy"]


@pytest.mark.django_db
def test_with_passwords_off_no_password_signs_anyone_in(client, settings, django_user_model) -> None:
    settings.CHAT_PASSWORD_LOGIN = False
    django_user_model.objects.create_user("hal", password="right-password")
    page = client.get("/accounts/login/")
    assert 'name="password"' not in page.content.decode()

    refused = client.post("/accounts/login/", {"username": "hal", "password": "right-password"}, follow=True)
    assert "Password sign-in is off" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert PasswordLoginBackend().authenticate(None, username="hal", password="right-password") is None
    admin_login = client.get("/admin/login/?next=/admin/")
    assert admin_login.status_code == 302
    assert admin_login.headers["Location"].startswith("/accounts/login/")
    assert client.post("/admin/login/", {"username": "hal", "password": "right-password"}).status_code == 302
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_session_signed_in_before_passwords_were_turned_off_stays(
    client, settings, django_user_model
) -> None:
    user = django_user_model.objects.create_user("ida", password="pw")
    client.force_login(user)
    settings.CHAT_PASSWORD_LOGIN = False
    assert client.get("/").wsgi_request.user == user


@pytest.mark.django_db
def test_the_claim_maps_names_ignores_unmapped_values_when_asked_and_reads_a_bounded_list(
    settings, django_user_model
) -> None:
    settings.CHAT_OIDC_GROUPS_CLAIM = "roles"
    settings.CHAT_OIDC_GROUP_MAP = {"eng": "Engineering"}
    settings.CHAT_OIDC_SUPERUSER_VALUE = "root"
    user = django_user_model.objects.create_user("jo")
    provider_groups_sync(user=user, claims={"roles": "eng other root"})  # a space-separated string
    assert set(user.groups.values_list("name", flat=True)) == {"Engineering", "other", "root"}
    user.refresh_from_db()
    assert user.is_superuser
    assert user.is_staff

    settings.CHAT_OIDC_GROUPS_UNMAPPED = False
    provider_groups_sync(user=user, claims={"roles": ["eng", "other", 7, {"x": 1}]})
    assert set(user.groups.values_list("name", flat=True)) == {"Engineering"}
    user.refresh_from_db()
    assert not user.is_superuser
    assert not user.is_staff

    settings.CHAT_OIDC_GROUPS_UNMAPPED = True
    provider_groups_sync(user=user, claims={"roles": [f"g{n}" for n in range(5000)]})
    assert user.groups.count() == CLAIM_VALUES_MAX


@pytest.mark.django_db
def test_without_a_groups_claim_setting_a_sign_in_changes_no_group(settings, django_user_model) -> None:
    user = django_user_model.objects.create_user("kim", is_staff=True)
    provider_groups_sync(user=user, claims={"groups": ["eng"]})
    assert not user.groups.exists()
    user.refresh_from_db()
    assert user.is_staff


@pytest.mark.django_db
def test_a_provider_that_cannot_be_reached_is_told_on_the_sign_in_page(client) -> None:
    """A provider whose discovery document does not answer (down, or a mistyped issuer) sends the browser
    back to the sign-in page with the reason, rather than a server error."""
    SocialApp.objects.create(
        provider="openid_connect",
        provider_id="down",
        name="Down SSO",
        client_id="c",
        secret="s",
        settings={"server_url": "http://127.0.0.1:9", "oauth_pkce_enabled": True},  # nothing listens
    )
    client.get("/accounts/login/")
    started = client.post("/accounts/oidc/down/login/")
    assert started.status_code == 302
    assert started.headers["Location"] == "/accounts/login/"
    told = client.get("/accounts/login/").content.decode()
    assert "Sign-in with Down SSO failed: the provider could not be reached" in told


@pytest.mark.django_db
def test_a_provider_id_set_in_the_environment_and_in_the_admin_is_the_environments_alone(
    client, settings
) -> None:
    """Two apps of one provider id (CHAT_OIDC_PROVIDERS, and a *Social application* added in the admin
    as well) would be two buttons of one URL, whose sign-in allauth cannot pick an app for: the
    environment's is used, the admin's is left aside."""
    settings.SOCIALACCOUNT_PROVIDERS = corp_provider("http://127.0.0.1:9")  # nothing listens
    SocialApp.objects.create(
        provider="openid_connect",
        provider_id="corp",
        name="Corp in the admin",
        client_id="c",
        secret="s",
        settings={"server_url": "http://127.0.0.1:9"},
    )
    page = client.get("/accounts/login/").content.decode()
    assert page.count("Log in with") == 1
    assert "Log in with Corp SSO" in page
    started = client.post("/accounts/oidc/corp/login/")
    assert started.status_code == 302  # to the sign-in page, saying the provider could not be reached
    assert "Sign-in with Corp SSO failed" in client.get("/accounts/login/").content.decode()


@pytest.mark.django_db
def test_an_unmapped_value_never_joins_a_group_that_holds_permissions(settings, django_user_model) -> None:
    """A provider's group named like a local group of admin rights (one its users may be able to make
    themselves) gives none of them: only the operator's map leads into such a group."""
    from django.contrib.auth.models import Group, Permission

    settings.CHAT_OIDC_GROUPS_CLAIM = "groups"
    settings.CHAT_OIDC_GROUP_MAP = {"it-admins": "Operators"}
    for name in ("Operators", "Editors"):
        Group.objects.create(name=name).permissions.add(Permission.objects.get(codename="change_user"))
    Group.objects.create(name="Research")  # no permissions: a group of agents and budgets
    user = django_user_model.objects.create_user("lee")
    provider_groups_sync(user=user, claims={"groups": ["Editors", "Research", "it-admins"]})
    assert set(user.groups.values_list("name", flat=True)) == {"Research", "Operators"}
    assert not ProviderGroupGrant.objects.filter(user=user, group__name="Editors").exists()
