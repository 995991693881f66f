"""A thinking model's reply on the page: its reasoning in a block of its own, open while it thinks and
folded away, saying how long it took, once the answer starts; and the reasoning controls offered only
for a model whose catalog says it thinks."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from conversations.models import ChatModel

from .browser import ChatBrowserTestCase

THOUGHT_RE = re.compile(r"^Thought for \d+ s$")
STABLE_SORTS = (
    "Stable means items with equal keys keep their order. Merge sort and insertion sort are stable; "
    "quicksort and heapsort, as usually written, are not. Python's Timsort is stable. "
    "List them, then say why it matters: sorting by one key after another."
)
REASONING = "%20".join(f"Considering{i}" for i in range(24))


class ReasoningTests(ChatBrowserTestCase):
    def test_reasoning_streams_open_then_folds_away_when_the_answer_starts_and_opens_again(self) -> None:
        self.chat_open()
        self.standin.script(
            {
                "reasoning": "reasoning_content",
                "reasoning_ms": 2500,
                "reasoning_text": STABLE_SORTS,
                "delay_ms": 40,
                "tokens": 60,
            }
        )
        self.message_send("Which sorting algorithms are stable?")
        block = self.bubbles("assistant").nth(0).locator("details.reasoning")
        summary = block.locator("summary")
        expect(summary).to_have_text("Thinking…")
        expect(block).to_have_attribute("open", "")
        expect(block.locator(".reasoning-text")).to_contain_text("equal keys")
        expect(self.bubbles("assistant").nth(0).locator(".content")).to_have_text("")

        expect(summary).to_have_text(THOUGHT_RE)  # the answer started
        expect(block).not_to_have_attribute("open", "")
        expect(block.locator(".reasoning-text")).to_be_hidden()
        bubble = self.reply_finished(0)
        expect(summary).to_have_text("Thought for 3 s")  # as the server measured: 2.5 s and then some
        content = bubble.locator(".content")
        expect(content).not_to_have_text("")
        assert "equal keys" not in content.inner_text()

        summary.click()
        expect(block.locator(".reasoning-text")).to_be_visible()
        expect(block.locator(".reasoning-text")).to_have_text(STABLE_SORTS)
        self.screenshot_save("browser-reasoning.png", full_page=False)  # docs/screenshots/reasoning.png

        self.page.reload()  # from the stored history: folded, the same duration
        expect(self.page.locator("#connection")).to_have_text("connected")
        stored = self.reply_finished(0).locator("details.reasoning")
        expect(stored.locator("summary")).to_have_text("Thought for 3 s")
        expect(stored).not_to_have_attribute("open", "")

    def test_a_think_prefix_shows_as_reasoning_not_in_the_answer(self) -> None:
        self.chat_open()
        self.message_send(
            f"Quick one [[standin reasoning=think reasoning_ms=300 reasoning_text={REASONING}]]"
        )
        bubble = self.reply_finished(0)
        expect(bubble.locator("details.reasoning summary")).to_have_text(THOUGHT_RE)
        assert "think>" not in bubble.locator(".content").inner_text()
        assert "Considering" not in bubble.locator(".content").inner_text()

    def test_a_model_that_thought_without_showing_its_words_still_says_for_how_long(self) -> None:
        self.chat_open()
        self.message_send("Hidden thoughts [[standin reasoning_tokens=40 first_delay_ms=1600]]")
        bubble = self.reply_finished(0)
        line = bubble.locator(".reasoning-unseen")
        expect(line).to_have_text("Thought for 2 s")
        expect(bubble.locator("details.reasoning")).to_have_count(0)

    def test_reasoning_effort_and_thinking_budget_are_offered_only_for_a_model_that_thinks(self) -> None:
        ChatModel.objects.filter(name="openai/gpt-5.1").update(capabilities={"thinking": True})
        ChatModel.objects.filter(name="google/gemini-3-pro-preview").update(capabilities={"thinking": False})
        self.chat_open()
        self.page.locator("#reply-settings summary").click()
        effort = self.page.get_by_label("Reasoning")
        budget = self.page.get_by_label("Thinking budget")
        self.page.locator("#model").select_option("google/gemini-3-pro-preview")
        expect(effort).to_be_hidden()
        expect(budget).to_be_hidden()
        self.page.locator("#model").select_option("openai/gpt-5.1")
        expect(effort).to_be_visible()
        expect(budget).to_be_visible()
        effort.select_option("high")
        budget.fill("2048")
        expect(self.page.locator("#settings-summary")).to_have_text(
            "Settings: reasoning effort high, thinking budget 2048"
        )

        self.page.locator("#model").select_option("google/gemini-3-pro-preview")
        expect(effort).to_be_hidden()
        expect(self.page.locator("#settings-summary")).to_have_text("Settings")
        self.message_send("no thinking here")
        self.reply_finished(0)
        sent = self.standin.requests()[0]["body"]
        assert "reasoning_effort" not in sent
        assert "thinking" not in sent

        self.page.locator("#model").select_option("openai/gpt-5.1")
        expect(budget).to_have_value("2048")
        self.message_send("think about it")
        self.reply_finished(1)
        sent = self.standin.requests()[1]["body"]
        assert (sent["reasoning_effort"], sent["thinking"]) == (
            "high",
            {"type": "enabled", "budget_tokens": 2048},
        )

    def test_a_reload_mid_thought_shows_the_reasoning_so_far_then_exactly_the_rest(self) -> None:
        steps = " ".join(f"step{i}" for i in range(60))
        self.chat_open()
        self.standin.script({"reasoning": "reasoning", "reasoning_ms": 4000, "reasoning_text": steps})
        self.message_send("Think it through slowly")
        words = self.bubbles("assistant").nth(0).locator(".reasoning-text")
        expect(words).to_contain_text("step5 ")

        self.page.reload()  # mid-thought: the history brings the reasoning so far, the frames the rest
        expect(self.page.locator("#connection")).to_have_text("connected")
        block = self.bubbles("assistant").nth(0).locator("details.reasoning")
        expect(block.locator("summary")).to_have_text("Thinking…")
        expect(block).to_have_attribute("open", "")
        self.reply_finished(0)
        expect(block.locator("summary")).to_have_text(THOUGHT_RE)
        block.locator("summary").click()
        expect(block.locator(".reasoning-text")).to_have_text(steps)  # every word once, in order

    def test_the_last_reasoning_shows_when_the_end_comes_before_the_next_frame_is_drawn(self) -> None:
        # A busy tab draws late: the reply's end arrives before the frame that would draw its last words.
        self.page.add_init_script(
            "window.requestAnimationFrame = (draw) => setTimeout(() => draw(performance.now()), 1500);"
            "window.cancelAnimationFrame = (id) => clearTimeout(id);"
        )
        self.chat_open()
        self.standin.script(
            {
                "reasoning": "reasoning_content",
                "tokens": 0,
                "reasoning_ms": 100,
                "reasoning_text": STABLE_SORTS,
            }
        )
        self.message_send("Think, but say nothing")
        block = self.reply_finished(0).locator("details.reasoning")
        expect(block.locator("summary")).to_have_text(THOUGHT_RE)
        block.locator("summary").click()
        expect(block.locator(".reasoning-text")).to_have_text(STABLE_SORTS)

    def test_a_reply_that_only_thought_keeps_its_reasoning_folded_under_its_duration(self) -> None:
        self.chat_open()
        self.standin.script(
            {
                "reasoning": "reasoning_content",
                "tokens": 0,
                "reasoning_ms": 300,
                "reasoning_text": STABLE_SORTS,
            }
        )
        self.message_send("Think, but say nothing")
        bubble = self.reply_finished(0)
        block = bubble.locator("details.reasoning")
        expect(block.locator("summary")).to_have_text("Thought for 1 s")
        expect(block).not_to_have_attribute("open", "")
        block.locator("summary").click()
        expect(block.locator(".reasoning-text")).to_have_text(STABLE_SORTS)
