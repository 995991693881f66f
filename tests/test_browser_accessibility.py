"""Accessibility, checked by axe-core (from npm, injected by the test) on the pages people use: the chat
page in light and dark, on a desktop and a phone; a shared page; the login page; and the admin's usage
page and agent form. None may have a serious or critical violation."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from conversations.models import Agent, Conversation, MCPServerPreset, Message
from conversations.usage_ledger import reply_entries_write

from . import browser
from .processes import ROOT
from .rows import reply_row

AXE = (ROOT / "node_modules" / "axe-core" / "axe.min.js").read_text()
SEVERE = {"serious", "critical"}
PHONE = {"width": 390, "height": 844}


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


class AccessibilityTests(browser.ChatBrowserTestCase):
    def assert_accessible(self, name: str, page: Page | None = None) -> None:
        page = page or self.page
        page.screenshot(path=str(browser.ARTIFACTS / f"a11y-{name}.png"), animations="disabled")
        violations = severe_violations(page)
        assert not violations, f"{name}: {json.dumps(violations, indent=1)}"

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
        get_user_model().objects.create_superuser("ops", password="pw-for-tests-only")
        conversation = Conversation.objects.create(owner_key="k", session_id="usage-a11y", title="Usage")
        question = Message.objects.create(conversation=conversation, role="user", content="q")
        reply = reply_row(
            conversation, parent=question, prompt_tokens=10, completion_tokens=20, total_tokens=30
        )
        reply_entries_write([reply.pk])  # as its end writes it
        self.page.goto(f"{self.live_server_url}/admin/login/?next=/admin/conversations/dailyusage/")
        self.page.get_by_label("Username").fill("ops")
        self.page.get_by_label("Password").fill("pw-for-tests-only")
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page).to_have_url(f"{self.live_server_url}/admin/conversations/dailyusage/")
        expect(self.page.locator("#result_list")).to_contain_text(str(date.today().year))
        self.assert_accessible("admin-usage")
        self.page.emulate_media(color_scheme="dark")
        self.assert_accessible("admin-usage-dark")

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
