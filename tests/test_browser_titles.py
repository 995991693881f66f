"""The model's title reaches the title bar and the sidebar live, in every tab of the conversation, and a
default stand-in reply is rendered as Markdown."""

from __future__ import annotations

import pytest
from django.test import override_settings

from conversations.models import Conversation
from standin.answers import answer_tokens

from .browser import ARTIFACTS, ChatBrowserTestCase, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUESTION = "Plan a weekend trip to Lisbon"


@override_settings(CHAT_TITLE_MODEL="openai/gpt-5-mini")  # on before the live server forks
class TitleTests(ChatBrowserTestCase):
    def test_the_models_title_appears_live_in_the_title_bar_and_another_tabs_sidebar(self) -> None:
        session_id = self.chat_open()
        # The title arrives late enough for both tabs to show the first line before it.
        self.standin.title_script({"first_delay_ms": 1500})
        second = self.page.context.new_page()
        second.goto(self.page.url)
        expect(second.locator("#connection")).to_have_text("connected")
        list_loads: list[str] = []
        second.on("request", lambda r: list_loads.append(r.url) if "/api/conversations/" in r.url else None)

        whole = len(answer_tokens(QUESTION.split(), [], None))  # the whole answer, not the suite's 12 tokens
        self.message_send(f"{QUESTION} [[standin tokens={whole} delay_ms=5]]")
        self.reply_finished(0)
        entry = second.locator(f'#conversation-list a[data-session-id="{session_id}"]')
        for page in (self.page, second):
            expect(page.locator("#chat-title")).to_have_text(QUESTION)  # the cleaned first line, at once
        expect(entry).to_have_text(QUESTION)
        loads_before = len(list_loads)

        for page in (self.page, second):
            expect(page.locator("#chat-title")).to_have_text("Plan weekend trip Lisbon")
        expect(entry).to_have_text("Plan weekend trip Lisbon")
        expect(self.page.locator(f'#conversation-list a[data-session-id="{session_id}"]')).to_have_text(
            "Plan weekend trip Lisbon"
        )
        assert len(list_loads) == loads_before  # renamed in place, the list not fetched again
        assert Conversation.objects.get(session_id=session_id).title == "Plan weekend trip Lisbon"
        assert second.title() == "Plan weekend trip Lisbon · Dedalus Chat"
        second.bring_to_front()
        ARTIFACTS.mkdir(exist_ok=True)
        second.screenshot(path=str(ARTIFACTS / "titles.png"), animations="disabled")

    def test_a_default_stand_in_reply_is_rendered_as_markdown(self) -> None:
        self.chat_open()
        question = "compare the small and large models"
        whole = len(answer_tokens(question.split(), [], None))  # the whole answer, not the suite's 12 tokens
        self.message_send(f"{question} [[standin tokens={whole} delay_ms=2]]")
        bubble = self.reply_finished(0)
        content = bubble.locator(".content")
        expect(content.locator("table th")).to_have_count(4)
        expect(content.locator("table tbody tr")).to_have_count(3)
        expect(content.locator("a[href='https://docs.dedaluslabs.ai']")).to_have_text(
            "the Dedalus documentation"
        )
        expect(content.locator("p").first).to_have_text(f"You asked: “{question}”. Here is a short answer.")
        self.screenshot_save("standin-markdown.png")

        self.message_send("write a python function [[standin tokens=90 delay_ms=2]]")
        code = self.reply_finished(1).locator(".content pre code")
        expect(code).to_contain_text("def word_counts(text: str)")
