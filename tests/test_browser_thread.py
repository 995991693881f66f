"""How the thread reads, in chromium: the user's words as bubbles on the right, replies across the
thread's width under their model's label, and the streaming cursor inside the block being written."""

from __future__ import annotations

from urllib.parse import quote

from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from conversations.models import Conversation, Message

from . import browser

LIST_REPLY = "> a quoted line\n\nSteps:\n\n- first step\n- second step with several more words to come"


class ThreadLookInChromiumTests(browser.ChatBrowserTestCase):
    def test_user_bubbles_sit_right_and_replies_span_the_thread(self) -> None:
        self.chat_open()
        self.message_send("a short question")
        reply = self.reply_finished(0)
        question = self.bubbles("user").first
        thread = self.page.locator("#chat .thread").bounding_box()
        bubble = question.locator(".content").bounding_box()
        answer = reply.locator(".content").bounding_box()
        assert thread
        assert bubble
        assert answer
        assert abs((bubble["x"] + bubble["width"]) - (thread["x"] + thread["width"])) < 24  # on the right
        assert bubble["width"] < thread["width"] * 0.8  # a bubble, not a row
        assert answer["width"] > thread["width"] * 0.9  # the reply takes the width
        expect(reply.locator(".model")).to_have_text("GPT-5.1")
        self.screenshot_save("thread-bubbles.png", full_page=False)

    def test_the_streaming_cursor_stays_inline_inside_quotes_and_lists(self) -> None:
        self.chat_open()
        self.message_send(f"[[standin reply={quote(LIST_REPLY)} delay_ms=400]]")
        streaming = self.page.locator("#chat .message.assistant.streaming")
        quoted = streaming.locator("blockquote p.md-cursor, blockquote.md-cursor p")
        expect(streaming.locator(".md-cursor")).to_have_count(1)
        # Read at once, while it streams: the cursor is inside the list item being written, on its line.
        seen = self.page.wait_for_function(
            """() => {
                const li = document.querySelector('#chat .message.assistant.streaming li.md-cursor');
                if (!li || !/second step/.test(li.textContent)) return false;
                return [getComputedStyle(li, '::after').content, li.getBoundingClientRect().height];
            }"""
        ).json_value()
        assert seen[0] == '"▍"', seen
        assert seen[1] < 40, seen  # one line: the words and the cursor, no line of its own
        assert quoted.count() == 0  # the cursor left the quote once the list began
        self.reply_finished(0)
        expect(self.page.locator("#chat .md-cursor")).to_have_count(0)  # stored: no cursor drawn

    def test_an_api_conversations_tool_calls_and_results_read_plainly_and_it_goes_on(self) -> None:
        self.signed_in_chat_open()
        user = get_user_model().objects.get(username="nora")
        conversation = Conversation.objects.create(
            owner_key=f"u:{user.pk}", session_id="api-tools", title="Time", user=user, source="api"
        )
        calls = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'},
            }
        ]
        parent = None
        for role, content, extra in (
            ("user", "What time is it?", {}),
            ("assistant", "", {"tool_calls": calls}),
            ("tool", "Noon", {"tool_call_id": "call_1"}),
            ("assistant", "It is noon.", {}),
        ):
            parent = Message.objects.create(
                conversation=conversation,
                parent=parent,
                role=role,
                content=content,
                model="openai/gpt-5.1",
                **extra,
            )
        conversation.current_message = parent
        conversation.save(update_fields=["current_message"])
        errors: list[str] = []
        self.page.on("pageerror", lambda error: errors.append(str(error)))

        self.page.goto(f"{self.live_server_url}/c/api-tools/")
        expect(self.page.locator("#connection")).to_have_text("connected")

        called = self.bubbles("assistant").first
        expect(called.locator(".tool summary")).to_have_text("used tool get_time")
        result = self.bubbles("tool")
        expect(result.locator(".role")).to_have_text("Tool result")
        expect(result.locator(".content")).to_have_text("Noon")
        expect(result.locator(".message-actions button")).to_have_text(["Copy"])
        expect(self.page.locator("#chat .unsent-note")).to_have_count(0)  # the question was answered
        self.message_send("And now? [[standin reply=Still%20noon]]")
        expect(self.reply_finished(2).locator(".content")).to_have_text("Still noon")
        assert errors == []
