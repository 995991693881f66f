""" "My agents" in chromium: a signed-in user builds an agent in the dialog with the keyboard, picks it, and
it answers as that agent; it can be changed and deleted there; a visitor is asked to sign in."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model

from conversations.models import Agent, Message

from . import browser
from .browser import CHOSEN_MODEL, expect


class MyAgentsInChromiumTests(browser.ChatBrowserTestCase):
    def test_a_user_builds_an_agent_picks_it_and_it_answers_as_that_agent(self) -> None:
        self.signed_in_chat_open()
        page = self.page
        dialog = page.locator("#agents-dialog")
        page.locator("#my-agents-open").focus()
        page.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        expect(page.locator("#agents-status")).to_have_text("No agents yet.")
        page.locator("#agent-new").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#agent-name")).to_be_focused()  # the form opens on its first field
        expect(page.locator("#agents-title")).to_have_text("New agent")

        page.keyboard.type("Haiku poet")
        page.locator("#agent-about").fill("Answers in haiku.")
        page.locator("#agent-instructions").fill("Answer every question in a haiku.")
        page.locator("#agent-model").select_option(CHOSEN_MODEL)
        expect(page.locator(f".agent-handoff[value='{CHOSEN_MODEL}']")).to_be_disabled()  # it answers
        page.locator(".agent-handoff[value='openai/gpt-5.1']").check()
        page.locator("#agent-temperature").fill("0.3")
        page.locator("#agent-mcp-servers").fill("acme/search@1.2.0")
        self.screenshot_save("my-agents.png", full_page=False)
        page.locator("#agent-name").press("Enter")  # Enter in a field saves, as in any form

        expect(dialog).to_be_hidden()
        expect(page.locator("#my-agents-open")).to_be_focused()  # the focus goes back where it was
        agent = Agent.owned.get(owner__username="nora")
        picker = page.locator("#model")
        expect(picker).to_have_value(f"agent:{agent.slug}")  # saving picks it
        expect(picker.locator("optgroup[label='My agents'] option")).to_have_text(["Haiku poet"])
        expect(page.locator("#agent-description")).to_have_text("Answers in haiku.")
        expect(page.locator("#mcp")).to_be_disabled()  # it brings its own MCP servers

        self.message_send("what is autumn?")
        bubble = self.reply_finished(0)
        expect(bubble).to_have_class(re.compile(r"\bcomplete\b"))
        expect(bubble.locator(".agent-name")).to_have_text("Haiku poet")
        (request,) = self.standin.requests()
        body = request["body"]
        assert body["messages"][0] == {"role": "system", "content": "Answer every question in a haiku."}
        assert body["model"] == [CHOSEN_MODEL, "openai/gpt-5.1"]
        assert body["temperature"] == 0.3
        assert body["mcp_servers"] == [{"slug": "acme/search", "version": "1.2.0"}]
        assert Message.objects.get(role="assistant").agent_slug == agent.slug

        picker.focus()  # the picker shows "My agents" as its own group
        self.screenshot_save("my-agents-picker.png", full_page=False)

        # A reload keeps it in the picker, chosen for this conversation.
        page.reload()
        expect(page.locator("#connection")).to_have_text("connected")
        expect(picker).to_have_value(f"agent:{agent.slug}")

    def test_an_agent_is_changed_and_deleted_in_the_dialog(self) -> None:
        self.signed_in_chat_open("otto")
        owner = get_user_model().objects.get(username="otto")
        Agent.owned.create(owner=owner, slug="my:0123456789abcdef", name="Critic", model_names=[CHOSEN_MODEL])
        self.page.reload()
        expect(self.page.locator("#connection")).to_have_text("connected")
        self.page.locator("#model").select_option("agent:my:0123456789abcdef")
        self.message_send("is this good?")
        expect(self.reply_finished(0).locator(".agent-name")).to_have_text("Critic")
        self.page.locator("#my-agents-open").click()
        self.page.get_by_role("button", name="Edit Critic").click()
        expect(self.page.locator("#agent-name")).to_have_value("Critic")
        expect(self.page.locator("#agent-model")).to_have_value(CHOSEN_MODEL)
        self.page.locator("#agent-name").fill("Gentle critic")
        self.page.locator("#agent-temperature").fill("5")  # past the field's range: held back here
        self.page.locator("#agent-save").click()
        expect(self.page.locator("#agents-dialog")).to_be_visible()
        self.page.locator("#agent-temperature").fill("")
        # the server's refusal, under the form
        self.page.locator("#agent-mcp-servers").fill("https://10.0.0.1/mcp")
        self.page.locator("#agent-save").click()
        expect(self.page.locator("#agent-error")).to_contain_text("private, loopback and local hosts")
        self.page.locator("#agent-mcp-servers").fill("")
        self.page.locator("#agent-save").click()
        expect(self.page.locator("#agents-dialog")).to_be_hidden()
        expect(self.page.locator("#model optgroup[label='My agents'] option")).to_have_text(["Gentle critic"])
        assert Agent.owned.get().name == "Gentle critic"

        self.page.locator("#my-agents-open").click()
        self.page.get_by_role("button", name="Delete Gentle critic").click()
        expect(self.page.locator("#agents-status")).to_have_text("Gentle critic deleted.")
        expect(self.page.locator("#model optgroup[label='My agents']")).to_have_count(0)
        expect(self.page.locator("#model")).to_have_value(re.compile(r"^[^:]+/"))  # a model again
        assert not Agent.owned.exists()
        self.page.keyboard.press("Escape")
        self.page.reload()  # the reply it wrote keeps saying an agent of one's own wrote it
        expect(self.bubbles("assistant").first.locator(".agent-name")).to_have_text("Own agent")

    def test_a_visitor_is_asked_to_sign_in(self) -> None:
        self.chat_open()
        self.page.locator("#my-agents-open").click()
        dialog = self.page.locator("#agents-dialog")
        expect(dialog).to_contain_text("sign in")
        expect(dialog.get_by_role("link", name="sign in")).to_have_attribute(
            "href", re.compile("/accounts/login/")
        )
        self.page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
