"""Joining in a browser: an invitation's link opened in chromium makes the account, signs the browser in
and hands it the chat it had before; the link is then refused. The invitation's page (with its errors
shown), the refusal, the sign-up page and its answer have no serious or critical axe violation."""

from __future__ import annotations

import io

from django.core.management import call_command
from django.test import override_settings
from playwright.sync_api import expect

from conversations.models import Conversation, SignUp

from . import browser
from .test_browser_accessibility import AccessibleStates

PASSWORD = "a long pass phrase for tests"


class InviteBrowserTests(AccessibleStates):
    def test_an_invitation_opened_in_a_browser_makes_the_account_and_signs_it_in(self) -> None:
        session_id = self.chat_open()
        self.message_send("asked before joining")
        self.reply_finished(0)
        out = io.StringIO()
        call_command("invite", "--base-url", self.live_server_url, stdout=out)
        link = out.getvalue().strip().splitlines()[-1]

        self.page.goto(link)
        expect(self.page.get_by_role("heading", level=1)).to_have_text("Join Dedalus Chat")
        self.assert_accessible("invite")
        self.page.get_by_label("Username").fill("vera")
        self.page.get_by_label("Password", exact=True).fill("vera")
        self.page.get_by_label("Password confirmation").fill("vera")
        self.page.get_by_role("button", name="Create my account").click()
        expect(self.page.get_by_text("This password is too short.")).to_be_visible()
        expect(self.page.get_by_label("Password confirmation")).to_have_attribute("aria-invalid", "true")
        self.assert_accessible("invite-errors")

        self.page.get_by_label("Password", exact=True).fill(PASSWORD)
        self.page.get_by_label("Password confirmation").fill(PASSWORD)
        self.page.get_by_role("button", name="Create my account").click()
        expect(self.page).to_have_url(browser.CHAT_URL_RE)
        expect(self.page.locator(".account-name")).to_have_text("vera")
        assert Conversation.objects.get(session_id=session_id).user.username == "vera"

        self.page.goto(link)
        expect(self.page.get_by_role("heading", level=1)).to_have_text(
            "This invitation cannot be used any more"
        )
        self.assert_accessible("invite-used")


@override_settings(CHAT_SIGNUP="approval")  # before the class's live server forks
class SignUpBrowserTests(AccessibleStates):
    def test_asking_for_an_account_from_the_sign_in_page(self) -> None:
        self.page.goto(f"{self.live_server_url}/accounts/login/")
        self.page.get_by_role("link", name="Ask for one").click()
        expect(self.page.get_by_role("heading", level=1)).to_have_text("Ask for an account")
        self.assert_accessible("signup")
        self.page.get_by_label("Username").fill("wade")
        self.page.get_by_label("Email address").fill("wade@example.com")
        self.page.get_by_label("Password", exact=True).fill(PASSWORD)
        self.page.get_by_label("Password confirmation").fill(PASSWORD)
        self.page.get_by_role("button", name="Ask for an account").click()
        expect(self.page.get_by_role("heading", level=1)).to_have_text("Your account waits for approval")
        self.assert_accessible("signup-done")
        assert not SignUp.objects.get().user.is_active
