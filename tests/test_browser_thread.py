"""How the thread reads, in chromium: the user's words as bubbles on the right, replies across the
thread's width under their model's label, and the streaming cursor inside the block being written."""

from __future__ import annotations

from urllib.parse import quote

from playwright.sync_api import expect

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
