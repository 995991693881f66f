"""API conversations on the chat page, in chromium: a user with none has no filter; once OpenAI's client
has made one through /v1/chat/completions, the sidebar's Chats | API filter (radio buttons, chosen with
the keyboard, remembered across reloads) lists it apart from the page's chats; opened, it shows its
history and goes on from the page; a new chat brings the list back to Chats; all of it passes axe in light
and dark, on a desktop and a phone."""

from __future__ import annotations

import json

import openai
from playwright.sync_api import expect

from conversations.models import Conversation

from . import browser
from .openai_clients import key_for
from .test_browser_accessibility import DESKTOP, PHONE, severe_violations

MODEL = "openai/gpt-5.1"


class ApiConversationsInChromiumTests(browser.ChatBrowserTestCase):
    def api_completion(self, text: str) -> str:
        """A completion by OpenAI's client with a key of nora's; return its conversation's id."""
        api = openai.OpenAI(api_key=key_for("nora"), base_url=f"{self.live_server_url}/v1", max_retries=0)
        raw = api.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": text}]
        )
        return raw.headers["X-Conversation-Id"]

    def listed(self) -> list[str]:
        """The session ids of the sidebar's entries, in order."""
        links = self.page.locator("#conversation-list a[data-session-id]")
        return [link.get_attribute("data-session-id") or "" for link in links.all()]

    def test_the_filter_lists_api_conversations_apart_and_opens_and_continues_one(self) -> None:
        self.signed_in_chat_open()
        page = self.page
        self.message_send("A page question [[standin reply=Page%20answer]]")
        self.reply_finished(0)
        page_chat = Conversation.objects.get(source="page").session_id
        expect(page.locator("#conversation-list a")).to_have_count(1)
        expect(page.locator("#source-filter")).to_have_count(0)  # no API conversation: no filter

        api_chat = self.api_completion("What is two and two? [[standin reply=Four.]]")
        page.reload()
        chats = page.get_by_role("radio", name="Chats")
        api = page.get_by_role("radio", name="API")
        expect(page.get_by_role("group", name="Show conversations from")).to_be_visible()
        expect(chats).to_be_checked()
        expect(page.locator("#conversation-list a")).to_have_count(1)
        assert self.listed() == [page_chat]  # the default list is the page's chats, as before

        chats.focus()
        page.keyboard.press("ArrowRight")  # a radio group: the arrow keys choose
        expect(api).to_be_checked()
        expect(page.locator("#conversation-search")).to_have_attribute(
            "placeholder", "Search API conversations"
        )
        expect(page.locator(f'#conversation-list a[data-session-id="{api_chat}"]')).to_be_visible()
        assert self.listed() == [api_chat]

        page.reload()  # remembered
        expect(api).to_be_checked()
        expect(page.locator(f'#conversation-list a[data-session-id="{api_chat}"]')).to_be_visible()
        page.locator(f'#conversation-list a[data-session-id="{api_chat}"]').click()
        expect(page).to_have_url(f"{self.live_server_url}/c/{api_chat}/")
        expect(self.bubbles("user")).to_have_count(1)
        expect(self.bubbles("assistant").nth(0)).to_contain_text("Four.")
        self.screenshot_save("api-conversations.png", full_page=False)  # docs/screenshots/

        self.message_send("And three and three? [[standin reply=Six.]]")
        expect(self.reply_finished(1)).to_contain_text("Six.")
        conversation = Conversation.objects.get(session_id=api_chat)
        assert (conversation.source, conversation.messages.count()) == ("api", 4)
        expect(api).to_be_checked()  # it is still an API conversation: the list stays
        assert self.listed() == [api_chat]

        page.locator("#new-chat").click()
        self.message_send("Another page question")
        self.reply_finished(0)
        expect(chats).to_be_checked()  # the list follows the chat being written in
        expect(page.locator("#announcer")).to_have_text("Showing chats.")
        expect(page.locator("#conversation-list a")).to_have_count(2)
        assert api_chat not in self.listed()

    def test_the_filter_passes_axe_in_light_and_dark_on_a_desktop_and_a_phone(self) -> None:
        self.signed_in_chat_open()
        self.api_completion("Hello [[standin reply=Hi.]]")
        self.page.reload()
        self.page.get_by_text("API", exact=True).click()
        expect(self.page.locator("#conversation-list a")).to_have_count(1)
        for name, scheme, viewport in [
            ("api-filter", "light", DESKTOP),
            ("api-filter-dark", "dark", DESKTOP),
            ("api-filter-mobile", "light", PHONE),
            ("api-filter-mobile-dark", "dark", PHONE),
        ]:
            self.page.emulate_media(color_scheme=scheme)
            self.page.set_viewport_size(viewport)
            drawer = self.page.locator("#sidebar-open")
            if viewport is PHONE and drawer.get_attribute("aria-expanded") == "false":
                drawer.click()
                expect(self.page.get_by_role("radio", name="API")).to_be_visible()
            self.page.screenshot(path=str(browser.ARTIFACTS / f"a11y-{name}.png"), animations="disabled")
            violations = severe_violations(self.page)
            assert not violations, f"{name}: {json.dumps(violations, indent=1)}"
