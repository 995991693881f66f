"""Accessibility, checked by axe-core (from npm, injected by the test) on the pages people use: the chat
page in light and dark, on a desktop and a phone; a shared page; the login page; the admin's usage page,
budgets and agent form; and the states the page is in now and then: the default agent picked for a new
chat, the message box near its limit, a refused attachment, a stopped reply, a pressed thumb, the
stand-in notice on a phone, a revoked share link's 404, the admin's first steps and the budget's line,
low and spent. None may have a serious or critical violation."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from allauth.socialaccount.models import SocialApp
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import override_settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from conversations.accounts.invites import invite_create
from conversations.accounts.signups import signup_create
from conversations.models import (
    Agent,
    Budget,
    ChatModel,
    Conversation,
    Invite,
    MCPServerPreset,
    Message,
    SignUp,
    UserQuota,
)
from conversations.usage_ledger import call_entry_write, reply_entries_write

from . import browser
from .processes import ROOT
from .rows import reply_row

AXE = (ROOT / "node_modules" / "axe-core" / "axe.min.js").read_text()
SEVERE = {"serious", "critical"}
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def severe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (WCAG 2.1 A and AA, and best
    practice). It runs through the test harness, not as a page script, so the page's CSP stays whole."""
    page.evaluate(AXE + "\n;true")
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(
              (v) => ({id: v.id, impact: v.impact, help: v.help,
                       nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' '))}))"""
    )
    return [violation for violation in found if violation["impact"] in SEVERE]


class AccessibleStates(browser.ChatBrowserTestCase):
    def assert_accessible(self, name: str, page: Page | None = None) -> None:
        page = page or self.page
        page.screenshot(path=str(browser.ARTIFACTS / f"a11y-{name}.png"), animations="disabled")
        violations = severe_violations(page)
        assert not violations, f"{name}: {json.dumps(violations, indent=1)}"

    def admin_sign_in(self, path: str) -> None:
        get_user_model().objects.create_superuser("ops", password="pw-for-tests-only")
        self.page.goto(f"{self.live_server_url}/admin/login/?next={path}")
        self.page.get_by_label("Username").fill("ops")
        self.page.get_by_label("Password").fill("pw-for-tests-only")
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page).to_have_url(f"{self.live_server_url}{path}")


class AccessibilityTests(AccessibleStates):
    def conversation_with_a_reply(self) -> str:
        session_id = self.chat_open()
        self.message_send("a table and some code, please")
        self.reply_finished(0)
        return session_id

    def test_the_chat_page_in_light_and_dark_on_a_desktop_and_a_phone(self) -> None:
        self.page.emulate_media(color_scheme="light")
        self.conversation_with_a_reply()
        self.assert_accessible("chat-light")
        self.page.locator("#chat-menu-button").click()  # its menu open, too
        expect(self.page.get_by_role("menu")).to_be_visible()
        self.assert_accessible("chat-menu")
        self.page.keyboard.press("Escape")
        self.page.emulate_media(color_scheme="dark")
        self.page.reload()
        expect(self.page.locator("#connection")).to_have_text("connected")
        self.assert_accessible("chat-dark")
        self.page.set_viewport_size(PHONE)
        self.assert_accessible("chat-dark-mobile")
        self.page.emulate_media(color_scheme="light")
        self.assert_accessible("chat-light-mobile")
        self.page.locator("#sidebar-open").click()  # the drawer
        self.assert_accessible("chat-drawer-mobile")

    def test_a_replys_reasoning_block_open_and_folded_in_light_and_dark(self) -> None:
        self.chat_open()
        self.standin.script(
            {"reasoning": "reasoning", "reasoning_ms": 200, "reasoning_text": "First this, then that."},
            {"reasoning_tokens": 30},  # thought without showing its words: the line alone
        )
        self.message_send("think first")
        self.reply_finished(0)
        self.message_send("and again")
        expect(self.reply_finished(1).locator(".reasoning-unseen")).to_be_visible()
        block = self.bubbles("assistant").nth(0).locator("details.reasoning")
        self.assert_accessible("reasoning-folded")
        block.locator("summary").click()
        expect(block.locator(".reasoning-text")).to_be_visible()
        self.assert_accessible("reasoning-open")
        self.page.emulate_media(color_scheme="dark")
        self.assert_accessible("reasoning-open-dark")

    def test_a_shared_page_and_the_login_page(self) -> None:
        session_id = self.conversation_with_a_reply()
        url = self.share_link_create(session_id)
        viewer = self.browser.new_context(viewport={"width": 1100, "height": 800}).new_page()
        self.addCleanup(viewer.context.close)
        viewer.goto(url)
        expect(viewer.locator("#messages .message.assistant")).to_have_count(1)
        self.assert_accessible("shared", viewer)
        viewer.emulate_media(color_scheme="dark")
        self.assert_accessible("shared-dark", viewer)
        viewer.goto(f"{self.live_server_url}/accounts/login/")
        self.assert_accessible("login", viewer)

    def test_the_admin_usage_page(self) -> None:
        conversation = Conversation.objects.create(owner_key="k", session_id="usage-a11y", title="Usage")
        question = Message.objects.create(conversation=conversation, role="user", content="q")
        reply = reply_row(
            conversation, parent=question, prompt_tokens=10, completion_tokens=20, total_tokens=30
        )
        reply_entries_write([reply.pk])  # as its end writes it
        self.admin_sign_in("/admin/conversations/dailyusage/")
        expect(self.page.locator("#result_list")).to_contain_text(str(date.today().year))
        self.assert_accessible("admin-usage")
        self.page.emulate_media(color_scheme="dark")
        self.assert_accessible("admin-usage-dark")

    def test_the_admin_budgets_page_with_its_spending_tables(self) -> None:
        team = Group.objects.create(name="team")
        team.user_set.add(get_user_model().objects.create_user("ada"))
        Budget.objects.create(group=team, unit="tokens", amount=1000, period="day")
        self.admin_sign_in("/admin/conversations/budget/")
        expect(self.page.locator("#budget-users")).to_contain_text("ada")
        self.assert_accessible("admin-budgets")
        self.page.emulate_media(color_scheme="dark")
        self.assert_accessible("admin-budgets-dark")

    def test_the_my_agents_dialog_its_list_and_its_form(self) -> None:
        owner = get_user_model().objects.create_user("ada", password="pw-for-tests-only")
        Agent.owned.create(
            owner=owner,
            slug="my:00000000000000aa",
            name="Critic",
            description="Reads drafts closely.",
            model_names=["openai/gpt-5.1"],
        )
        self.page.goto(f"{self.live_server_url}/accounts/login/?next=/")
        self.page.get_by_label("Username").fill("ada")
        self.page.get_by_label("Password").fill("pw-for-tests-only")
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page.locator("#connection")).to_have_text("connected")
        self.page.locator("#my-agents-open").click()
        expect(self.page.get_by_role("button", name="Edit Critic")).to_be_visible()
        self.assert_accessible("my-agents-list")
        self.page.get_by_role("button", name="New agent").click()
        expect(self.page.locator("#agent-name")).to_be_focused()
        self.assert_accessible("my-agents-form")
        self.page.emulate_media(color_scheme="dark")
        self.assert_accessible("my-agents-form-dark")
        self.page.set_viewport_size(PHONE)
        self.assert_accessible("my-agents-form-mobile")

    def test_the_admin_agent_form_with_its_notes_and_errors(self) -> None:
        get_user_model().objects.create_superuser("ops", password="pw-for-tests-only")
        MCPServerPreset.objects.create(label="Search", target="acme/search")
        agent = Agent.objects.create(
            slug="a11y", name="A11y", model_names=["openai/gpt-5.1", "retired/model"], colour="#7c3aed"
        )
        change = f"/admin/conversations/agent/{agent.pk}/change/"
        self.page.goto(f"{self.live_server_url}/admin/login/?next={change}")
        self.page.get_by_label("Username").fill("ops")
        self.page.get_by_label("Password").fill("pw-for-tests-only")
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page.get_by_text("Not in the model catalog: retired/model.").first).to_be_visible()
        self.assert_accessible("admin-agent-form")
        self.page.get_by_label("Temperature:").fill("5")
        self.page.get_by_label("Other MCP servers:").fill("http://10.0.0.1/mcp")
        self.page.get_by_role("button", name="Save", exact=True).click()
        expect(self.page.locator(".form-row.field-temperature .errorlist")).to_be_visible()
        self.assert_accessible("admin-agent-form-errors")
        self.page.emulate_media(color_scheme="dark")
        self.assert_accessible("admin-agent-form-errors-dark")


class AccessibleMomentsTests(AccessibleStates):
    """The states the page passes through now and then, each checked as it shows, at a desktop's 1280."""

    def setUp(self) -> None:
        super().setUp()
        self.page.set_viewport_size(DESKTOP)

    def test_a_new_chat_with_the_default_agent_picked(self) -> None:
        Agent.objects.create(
            slug="house",
            name="House",
            description="Answers as the house style asks.",
            model_names=[browser.CHOSEN_MODEL],
            mcp_servers=["acme/search"],
            is_default=True,
        )
        self.chat_open()
        expect(self.page.locator("#model")).to_have_value("agent:house")
        expect(self.page.locator("#agent-mcp")).to_have_text("House uses these MCP servers: acme/search")
        expect(self.page.locator("#empty-chat")).to_be_visible()
        self.assert_accessible("new-chat-default-agent")

    def test_the_message_box_near_and_past_its_limit(self) -> None:
        self.chat_open()
        most = settings.CHAT_MAX_MESSAGE_CHARS
        count = self.page.locator("#input-count")
        self.page.locator("#input").fill("word " * (most * 19 // 100))  # 95% of the limit
        expect(count).to_have_text(f"{most * 19 // 20} / {most} characters")
        self.assert_accessible("message-length-near-limit")
        self.page.locator("#input").fill("word " * (most // 5) + "!")
        expect(count).to_have_text(f"{most + 1} / {most} characters: shorten it to send")
        self.assert_accessible("message-length-over-limit")

    def test_a_stopped_reply_and_a_pressed_thumb(self) -> None:
        self.chat_open()
        self.standin.script({"tokens": 400, "delay_ms": 20})  # no directive in the shown question
        self.message_send("Plan three days in Lisbon")
        self.stream_samples(12)  # a few lines in
        self.page.locator("#stop").click()
        stopped = self.reply_finished(0)
        expect(stopped.locator(".status")).to_have_text(re.compile(r"^Stopped · \d+ tokens written$"))
        self.assert_accessible("reply-stopped")
        self.standin.script({"reply": "Tram 28, early, before the crowds; get off at Graça for the view."})
        self.message_send("Which tram should I take?")
        answered = self.reply_finished(1)
        answered.get_by_role("button", name="Good reply").click()
        expect(answered.get_by_role("button", name="Good reply")).to_have_attribute("aria-pressed", "true")
        self.page.keyboard.press("Escape")  # the comment box it offers stays closed
        expect(self.page.locator(".feedback-form")).to_have_count(0)
        self.assert_accessible("thumb-pressed")

    def test_a_revoked_share_links_404(self) -> None:
        session_id = self.chat_open()
        self.message_send("something to share")
        self.reply_finished(0)
        url = self.share_link_create(session_id)
        csrf = next(c["value"] for c in self.page.context.cookies() if c["name"] == "csrftoken")
        revoked = self.page.request.delete(
            f"{self.live_server_url}/c/{session_id}/share",
            headers={"X-CSRFToken": csrf, "Referer": self.live_server_url},
        )
        assert revoked.ok, revoked.status
        viewer = self.browser.new_context(viewport=DESKTOP).new_page()
        self.addCleanup(viewer.context.close)
        assert viewer.goto(url).status == 404
        expect(viewer.get_by_role("heading", level=1)).to_have_text("This shared chat is not available")
        self.assert_accessible("share-revoked-404", viewer)
        viewer.emulate_media(color_scheme="dark")
        self.assert_accessible("share-revoked-404-dark", viewer)

    def test_the_admins_first_steps_on_a_fresh_install(self) -> None:
        self.admin_sign_in("/admin/")
        expect(self.page.locator(".first-steps")).to_contain_text("Add an MCP server preset")
        expect(self.page.locator(".first-steps")).to_contain_text("Add an agent")
        self.assert_accessible("admin-first-steps")
        self.page.emulate_media(color_scheme="dark")
        self.assert_accessible("admin-first-steps-dark")

    # Set before the class's live server forks: a per-test override would not reach it.

    def test_the_budget_line_when_it_runs_low_and_when_it_is_spent(self) -> None:
        team = Group.objects.create(name="team")
        Budget.objects.create(group=team, unit="tokens", amount=1000, period="day")
        self.signed_in_chat_open("nora")
        nora = get_user_model().objects.get(username="nora")
        nora.groups.add(team)
        usage = {"prompt_tokens": 850, "completion_tokens": 0, "total_tokens": 850}
        call_entry_write(kind="title", owner_key=f"u:{nora.pk}", model="openai/gpt-5.1", usage=usage)
        self.page.reload()
        line = self.page.locator("#budget-left")
        expect(line).to_have_text(
            re.compile(
                r"^150 of 1,000 tokens left today \(the budget of your group team\); it resets at 00:00 UTC"
            )
        )
        expect(line).to_have_attribute("role", "status")
        self.assert_accessible("budget-low")
        self.page.emulate_media(color_scheme="dark")
        self.assert_accessible("budget-low-dark")

        usage = {"prompt_tokens": 200, "completion_tokens": 0, "total_tokens": 200}
        call_entry_write(kind="title", owner_key=f"u:{nora.pk}", model="openai/gpt-5.1", usage=usage)
        self.message_send("one more question")
        expect(line).to_have_text(
            re.compile(r"^You have spent the budget of your group team today; it resets at")
        )
        self.assert_accessible("budget-spent-dark")


class AccessibleTeamsAdminTests(AccessibleStates):
    """The admin's pages of teams, each with rows in it: invitations (added, with the link shown once),
    sign-ups waiting, budgets added and changed, who may use an agent or a model, and single sign-on's
    applications."""

    def setUp(self) -> None:
        super().setUp()
        self.page.set_viewport_size(DESKTOP)

    def pages_accessible(self, *paths: str) -> None:
        for path in paths:
            self.page.goto(f"{self.live_server_url}{path}")
            expect(self.page.locator("#content")).to_be_visible()
            self.assert_accessible("admin" + re.sub(r"[^a-z0-9]+", "-", path).rstrip("-"))

    def test_invitations_and_sign_ups(self) -> None:
        Group.objects.create(name="research")
        signup_create(username="sol", email="sol@example.org", password="a-long-pw-for-tests")
        used = invite_create(base_url="https://chat.example.com", email="used@example.org").invite
        Invite.objects.filter(pk=used.pk).update(used_at=timezone.now())
        self.admin_sign_in("/admin/conversations/invite/add/")
        self.assert_accessible("admin-invite-add")
        self.page.get_by_label("Email:").fill("new@example.org")
        self.page.get_by_label("research").check()
        self.page.get_by_role("button", name="Save", exact=True).click()
        expect(self.page.locator(".messagelist")).to_contain_text("/accounts/invite/")  # the link, once
        self.assert_accessible("admin-invite-made")
        self.page.emulate_media(color_scheme="dark")
        self.assert_accessible("admin-invite-made-dark")
        self.page.emulate_media(color_scheme="light")
        self.pages_accessible(
            "/admin/",  # with its line of sign-ups waiting
            "/admin/conversations/invite/?state=used",
            f"/admin/conversations/invite/{used.pk}/change/",
            "/admin/conversations/signup/?awaiting=yes",
            f"/admin/conversations/signup/{SignUp.objects.get().pk}/change/",
        )

    def test_budgets_groups_limits_and_single_sign_on_applications(self) -> None:
        team = Group.objects.create(name="team")
        budget = Budget.objects.create(group=team, unit="usd", amount="25", period="month")
        agent = Agent.objects.create(slug="counsel", name="Counsel", model_names=["openai/gpt-5.1"])
        agent.groups.add(team)
        model = ChatModel.objects.get(name=browser.CHOSEN_MODEL)
        model.groups.add(team)
        MCPServerPreset.objects.create(label="Search", target="acme/search")
        UserQuota.objects.create(user=get_user_model().objects.create_user("ada"), daily_tokens=5000)
        app = SocialApp.objects.create(
            provider="openid_connect",
            provider_id="corp",
            name="Corp SSO",
            client_id="chat",
            secret="s",
            settings={"server_url": "https://sso.example.com", "oauth_pkce_enabled": True},
        )
        self.admin_sign_in("/admin/conversations/budget/add/")
        self.assert_accessible("admin-budget-add")
        self.page.get_by_role("button", name="Save", exact=True).click()  # empty: its errors
        expect(self.page.locator(".errornote")).to_be_visible()
        self.assert_accessible("admin-budget-add-errors")
        self.pages_accessible(
            f"/admin/conversations/budget/{budget.pk}/change/",
            "/admin/conversations/agent/",
            "/admin/conversations/agent/add/",
            "/admin/conversations/chatmodel/",
            f"/admin/conversations/chatmodel/{model.pk}/change/",
            "/admin/socialaccount/socialapp/",
            f"/admin/socialaccount/socialapp/{app.pk}/change/",
            "/admin/conversations/mcpserverpreset/",
            "/admin/conversations/userquota/",
            "/admin/conversations/userquota/add/",
            "/admin/conversations/apikey/add/",
        )
        self.page.goto(f"{self.live_server_url}/admin/conversations/agent/")  # each cell named by its row
        expect(self.page.get_by_label("Enabled of Counsel")).to_be_checked()


@override_settings(CHAT_ATTACHMENT_MAX_BYTES=2048)
class AccessibleRefusedAttachmentTests(AccessibleStates):
    def test_a_file_refused_for_its_size(self) -> None:
        self.page.set_viewport_size(DESKTOP)
        self.chat_open()
        self.page.locator("#attach-input").set_input_files(
            [{"name": "quarterly-figures.txt", "mimeType": "text/plain", "buffer": b"x" * 3072}]
        )
        expect(self.page.locator(".attachment-chip")).to_have_class(re.compile(r"\brefused\b"))
        self.assert_accessible("attachment-refused")


@override_settings(CHAT_STANDIN_NOTICE=True)
class AccessibleStandInNoticeTests(AccessibleStates):
    def test_the_standin_notice_on_a_phone(self) -> None:
        self.page.set_viewport_size(PHONE)
        self.chat_open()
        expect(self.page.locator("#standin-notice")).to_be_visible()
        expect(self.page.locator("#empty-chat")).to_be_visible()  # the history came: the page as it stays
        self.assert_accessible("phone-standin-notice")
        self.page.emulate_media(color_scheme="dark")
        self.assert_accessible("phone-standin-notice-dark")
