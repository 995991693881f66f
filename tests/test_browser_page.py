"""The chat page as a person uses it, in Debian chromium: the journey through markdown, copy, rename,
switching, search and delete; stop / regenerate / edit with versions; tool activity; mobile and dark
layouts; keyboard only; and how long chats and long replies perform (reported, never asserted on time).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from playwright.sync_api import Page

from conversations.models import Conversation, MCPServerPreset, Message
from conversations.owners import Owner

from . import browser
from .browser import ARTIFACTS, CHAT_URL_RE, expect, words

pytestmark = pytest.mark.browser

JOURNEY_REPLY = """Here is how the two compare, from a Rustacean's point of view:

| language | first release | typing |
|----------|---------------|--------|
| Python   | 1991          | dynamic |
| Rust     | 2015          | static |

A tiny example:

```python
def greet(name):
    # say hello
    return f"hello {name}"
```

Read [the Rust book](https://doc.rust-lang.org/book/) for more."""

JOURNEY_CODE = 'def greet(name):\n    # say hello\n    return f"hello {name}"\n'


def long_reply(tokens: int) -> str:
    """A markdown reply of about `tokens` words: paragraphs, lists and code blocks, like a long answer."""
    parts, count, section = [], 0, 0
    while count < tokens:
        section += 1
        paragraph = " ".join(f"word{section}-{i}" for i in range(60))
        parts += [f"## Part {section}", paragraph]
        parts.append("\n".join(f"- item {section}.{i} with some text" for i in range(5)))
        if section % 4 == 0:
            code = "\n".join(f"value_{i} = {i} * {section}" for i in range(8))
            parts.append(f"```python\n{code}\n```")
        count += 60 + 5 * 6 + 2 + (8 * 4 if section % 4 == 0 else 0)
    return "\n\n".join(parts)


# Replies whose streamed render once went wrong: fences in list items, tildes, inline ``` lines, CRLF,
# loose and numbered lists, link references, HTML comments, blank lines inside code.
TRICKY_MARKDOWN = [
    "Steps:\n\n- one\n\n- ```python\n  x = 1\n\n  # not a heading\n  ```\n\n- three\n\nAfter.\n\n"
    "```\na\n\n# b\n```\n\nEnd.",
    "~~~js\nlet a = 1;\n\n```\nstill code\n~~~\n\n# Heading\n\ntext",
    "```js``` is inline\n\n```\nreal\n\ncode\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\ndone",
    "Windows lines\r\n\r\n```py\r\nx = 1\r\n\r\n# comment\r\n```\r\n\r\nafter\r\n",
    "1. first\n\n1. second\n\n1. third\n\nSee [the docs][1].\n\n[1]: https://example.com/docs",
    "<!--\nnote\n\n# x\n-->\n\nplain ![a chart](https://example.com/c.png) text",
]


class ChatPageJourneyTests(browser.ChatBrowserTestCase):
    accept_dialogs = False

    def dialog_record(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        if self.accept_dialogs:
            dialog.accept()
        else:
            dialog.dismiss()

    def sidebar(self) -> Any:
        return self.page.locator("#conversation-list a")

    def test_journey_markdown_copy_rename_switch_search_delete(self) -> None:
        clipboard = ["clipboard-read", "clipboard-write"]
        self.page.context.grant_permissions(clipboard, origin=self.live_server_url)
        first = self.chat_open()
        self.page.evaluate("() => { window.sameDocument = true; }")  # gone if anything reloads the page
        self.standin.script({"reply": JOURNEY_REPLY, "delay_ms": 25})
        self.message_send("compare Python and Rust")

        # The reply grows on screen while it streams, not all at once.
        samples = self.stream_samples(3)
        assert samples == sorted(set(samples))
        self.screenshot_save("page-journey-streaming.png", full_page=False)
        bubble = self.reply_finished(0)
        expect(bubble).to_have_class(re.compile(r"\bcomplete\b"))

        # Markdown: a table, a highlighted code block, a link that opens in a new tab.
        table = bubble.locator(".markdown table")
        expect(table.locator("tbody tr")).to_have_count(2)
        expect(table.locator("th").first).to_have_text("language")
        code = bubble.locator(".code-block code")
        expect(code).to_have_class(re.compile(r"\bhljs\b"))
        expect(code.locator(".hljs-keyword").first).to_have_text("def")
        expect(bubble.locator(".code-block .code-bar span")).to_have_text("python")
        link = bubble.locator(".markdown a")
        expect(link).to_have_attribute("href", "https://doc.rust-lang.org/book/")
        expect(link).to_have_attribute("target", "_blank")
        expect(link).to_have_attribute("rel", re.compile(r"\bnoopener\b"))
        expect(bubble.locator(".model")).to_have_text("GPT-5.1")  # the label, the id on hover
        expect(bubble.locator(".model")).to_have_attribute("title", "openai/gpt-5.1")
        expect(bubble.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
        stored = Message.objects.get(conversation__session_id=first, role="assistant")
        expect(bubble.locator(".status")).to_have_text(f"{stored.total_tokens} tokens")
        shown = words(bubble.locator(".content").text_content())
        assert shown.startswith("Here is how the two compare, from a Rustacean's point of view: language ")
        assert shown.endswith("Read the Rust book for more.")

        # The code block's copy button puts exactly the code on the clipboard; Copy on the message, its text.
        copy = bubble.locator(".copy-code")
        copy.click()
        expect(copy).to_have_text("Copied")
        expect(self.page.locator("#announcer")).to_have_text("Copied")  # said to screen readers too
        assert self.page.evaluate("() => navigator.clipboard.readText()") == JOURNEY_CODE
        bubble.locator("[data-action=copy-message]").click()
        assert self.page.evaluate("() => navigator.clipboard.readText()") == JOURNEY_REPLY
        self.screenshot_save("page-journey-markdown.png", full_page=False)

        # Rename, in place.
        expect(self.sidebar()).to_have_text(["compare Python and Rust"])
        self.page.locator("#chat-menu-button").click()
        self.page.get_by_role("menuitem", name="Rename").click()
        self.page.locator("#chat-title input").fill("Language notes")
        self.page.locator("#chat-title input").press("Enter")
        expect(self.page.locator("#chat-title")).to_have_text("Language notes")
        expect(self.sidebar()).to_have_text(["Language notes"])
        assert Conversation.objects.get(session_id=first).title == "Language notes"

        # A second chat, then back and forth through the sidebar, without a page load.
        self.page.get_by_role("link", name="+ New chat").click()
        expect(self.page).not_to_have_url(re.compile(rf"/c/{first}/$"))
        expect(self.page.locator("#connection")).to_have_text("connected")
        second = CHAT_URL_RE.search(self.page.url)[1]
        expect(self.page.locator("#messages .message")).to_have_count(0)
        self.message_send("a soup recipe")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        expect(self.sidebar()).to_have_text(["a soup recipe", "Language notes"])  # newest first

        self.sidebar().filter(has_text="Language notes").click()
        expect(self.page).to_have_url(re.compile(rf"/c/{first}/$"))
        expect(self.bubbles("user").locator(".content")).to_have_text("compare Python and Rust")
        expect(self.bubbles("assistant").locator("table")).to_be_visible()
        expect(self.page.locator("#chat-title")).to_have_text("Language notes")
        expect(self.sidebar().filter(has_text="Language notes")).to_have_attribute("aria-current", "page")
        self.sidebar().filter(has_text="a soup recipe").click()
        expect(self.page).to_have_url(re.compile(rf"/c/{second}/$"))
        expect(self.bubbles("user").locator(".content")).to_have_text("a soup recipe")
        self.page.go_back()  # the browser's history follows the switches
        expect(self.page).to_have_url(re.compile(rf"/c/{first}/$"))
        expect(self.bubbles("user").locator(".content")).to_have_text("compare Python and Rust")
        assert self.page.evaluate("() => window.sameDocument === true")

        # Search finds the first chat by a word of its reply only ("Rustaceans" stems to its "Rustacean's").
        self.page.locator("#conversation-search").fill("rustaceans")
        expect(self.sidebar()).to_have_text(["Language notes"])
        self.screenshot_save("page-journey-search.png", full_page=False)

        # Delete it, after a confirm; a fresh chat opens and the list no longer has it.
        self.accept_dialogs = True
        self.page.locator("#chat-menu-button").click()
        self.page.get_by_role("menuitem", name="Delete").click()
        assert self.dialogs == ["Delete this chat and all its messages?"]
        expect(self.page).not_to_have_url(re.compile(rf"/c/({first}|{second})/$"))
        expect(self.page.locator("#conversations-empty")).to_be_visible()
        self.page.locator("#conversation-search").fill("")
        expect(self.sidebar()).to_have_text(["a soup recipe"])
        assert not Conversation.objects.filter(session_id=first).exists()
        assert Conversation.objects.filter(session_id=second).exists()

    def test_streamed_markdown_ends_exactly_as_a_full_render(self) -> None:
        """Fed a few characters at a time, the incremental renderer ends with a full render's HTML."""
        self.chat_open()
        mismatches = self.page.evaluate(
            """async (samples) => {
                const { render, StreamingRenderer } = await import('/static/conversations/markdown.js');
                const parts = ':scope > .md-frozen > *, :scope > .md-tail > *, '
                            + ':scope > :not(.md-frozen):not(.md-tail)';
                const html = (root) => Array.from(root.querySelectorAll(parts), (n) => n.outerHTML).join('');
                const wrong = [];
                for (const text of samples) {
                    const streamed = document.createElement('div');
                    const renderer = new StreamingRenderer(streamed);
                    for (let end = 3; end < text.length; end += 3) renderer.update(text.slice(0, end));
                    renderer.finish(text);
                    const full = document.createElement('div');
                    full.appendChild(render(text));
                    if (html(streamed) !== html(full)) wrong.push([text, html(streamed), html(full)]);
                }
                return wrong;
            }""",
            TRICKY_MARKDOWN,
        )
        assert mismatches == []
        # An image in a reply is never loaded: it becomes a link named by its alt text.
        image = self.page.evaluate(
            """async () => { const { render } = await import('/static/conversations/markdown.js');
                       const root = document.createElement('div');
                       root.appendChild(render('see ![a chart](https://example.com/c.png)'));
                       const link = root.querySelector('a');
                       const images = root.querySelectorAll('img').length;
                       return [images, link.textContent, link.href, link.target]; }"""
        )
        assert image == [0, "a chart", "https://example.com/c.png", "_blank"]

    def test_stop_regenerate_and_edit_keep_every_version(self) -> None:
        session_id = self.chat_open()
        self.message_send("first question [[standin tokens=400 delay_ms=20 echo=1]]")
        self.stream_samples(2)
        expect(self.page.locator("#send")).to_be_disabled()  # one reply at a time
        expect(self.page.locator("#send")).to_be_hidden()  # one button: Stop where Send was
        expect(self.page.locator("#stop")).to_be_visible()
        self.page.locator("#stop").click()
        stopped = self.reply_finished(0)
        expect(stopped).to_have_class(re.compile(r"\binterrupted\b"))
        # Calm: no alarm badge, no error colour, and what it used.
        expect(stopped.locator(".badge")).to_be_hidden()
        expect(stopped.locator(".status")).to_have_text(re.compile(r"^Stopped · \d+ tokens written$"))
        colours = stopped.locator(".status").evaluate(
            """(status) => [getComputedStyle(status).color,
                            getComputedStyle(document.querySelector('.message-head')).color]"""
        )
        assert colours[0] == colours[1], colours  # the faint text colour, not --danger
        conversation = Conversation.objects.get(session_id=session_id)
        (first_reply,) = Message.objects.filter(conversation=conversation, role="assistant")
        assert first_reply.status == "interrupted"
        assert words(stopped.locator(".content").text_content()) == words(first_reply.content)
        # What it wrote, not the prompt it was sent with: the hover detail has the whole usage.
        written = int(stopped.locator(".status").text_content().split(" · ")[1].split()[0])
        assert written == first_reply.completion_tokens < first_reply.total_tokens

        # Retry the stopped reply: a second version beside the first.
        self.standin.script({"tokens": 30, "delay_ms": 5, "echo": 1})  # plain text: shown words = stored
        stopped.locator("[data-action=regenerate]").click()
        expect(self.bubbles("assistant").first.locator(".branch-pos")).to_have_text("2/2")
        regenerated = self.reply_finished(0)
        expect(regenerated).to_have_class(re.compile(r"\bcomplete\b"))
        replies = list(Message.objects.filter(conversation=conversation, role="assistant").order_by("pk"))
        assert [r.status for r in replies] == ["interrupted", "complete"]
        assert replies[0].parent_id == replies[1].parent_id
        assert words(regenerated.locator(".content").text_content()) == words(replies[1].content)

        # The arrows switch between the versions; the stored branch follows.
        regenerated.locator("[data-action=branch-prev]").click()
        expect(self.bubbles("assistant").first.locator(".branch-pos")).to_have_text("1/2")
        expect(self.bubbles("assistant").first).to_have_class(re.compile(r"\binterrupted\b"))
        conversation.refresh_from_db()
        assert conversation.current_message_id == replies[0].pk
        self.bubbles("assistant").first.locator("[data-action=branch-next]").click()
        expect(self.bubbles("assistant").first.locator(".branch-pos")).to_have_text("2/2")

        # Edit the question and resend: a new version of it with its own reply.
        self.standin.script({"tokens": 20, "delay_ms": 5, "echo": 1})
        self.bubbles("user").first.locator("[data-action=edit]").click()
        editor = self.bubbles("user").first.locator(".editor textarea")
        expect(editor).to_have_value("first question [[standin tokens=400 delay_ms=20 echo=1]]")
        # The editor's Send and Cancel stand alone: the message's Copy / Edit row goes while it edits.
        expect(self.bubbles("user").first.locator(".message-actions")).to_be_hidden()
        # An edit the server refuses stays in its editor, editable, with the reason shown.
        too_long = "x" * (settings.CHAT_MAX_MESSAGE_CHARS + 1)
        editor.fill(too_long)
        editor.press("Enter")
        expect(self.page.locator("#messages .system")).to_have_text(
            re.compile(r"^Error: Messages must be at most")
        )
        expect(editor).to_be_enabled()
        expect(editor).to_have_value(too_long)
        editor.fill("first question, asked better")
        editor.press("Enter")
        expect(self.bubbles("user").first.locator(".branch-pos")).to_have_text("2/2")
        expect(self.bubbles("user").first.locator(".content")).to_have_text("first question, asked better")
        expect(self.bubbles("user").first.locator(".message-actions")).to_be_visible()  # back once sent
        edited_reply = self.reply_finished(0)
        expect(edited_reply.locator(".branch-nav")).to_have_count(0)
        self.screenshot_save("page-branches.png", full_page=False)

        # The page and the rows agree; the upstream got the edited branch only.
        users = list(Message.objects.filter(conversation=conversation, role="user").order_by("pk"))
        assert [u.content for u in users] == [
            "first question [[standin tokens=400 delay_ms=20 echo=1]]",
            "first question, asked better",
        ]
        assert [u.parent_id for u in users] == [None, None]  # two versions of the first message
        conversation.refresh_from_db()
        leaf = Message.objects.get(pk=conversation.current_message_id)
        assert (leaf.parent_id, leaf.status) == (users[1].pk, "complete")
        assert words(edited_reply.locator(".content").text_content()) == words(leaf.content)
        assert self.standin.requests()[-1]["body"]["messages"] == [
            {"role": "user", "content": "first question, asked better"}
        ]
        self.page.reload()
        expect(self.bubbles("user").locator(".content")).to_have_text(["first question, asked better"])
        expect(self.bubbles("user").first.locator(".branch-pos")).to_have_text("2/2")
        expect(self.bubbles("assistant")).to_have_count(1)

    def test_tool_activity_shows_inline_and_survives_a_reload(self) -> None:
        self.chat_open()
        # A typo in the MCP field is shown as you type, and nothing is sent until it is fixed.
        mcp, error = self.page.locator("#mcp"), self.page.locator("#mcp-error")
        mcp.fill("acme weather")
        expect(error).to_have_text("'acme': An MCP server must be a slug like org/name or an https:// URL.")
        expect(mcp).to_have_attribute("aria-invalid", "true")
        self.page.locator("#input").fill("weather in Lisbon [[standin tool=weather_lookup tokens=20]]")
        self.page.locator("#input").press("Enter")
        expect(mcp).to_be_focused()
        assert self.standin.requests() == []
        mcp.fill("acme/weather")
        expect(error).to_be_empty()
        self.page.locator("#input").press("Enter")
        bubble = self.reply_finished(0)
        assert self.standin.requests()[-1]["body"]["mcp_servers"] == ["acme/weather"]
        for view in ("live", "reloaded"):
            tool = bubble.locator(".tool")
            expect(tool).to_have_count(1)
            expect(tool.locator("summary")).to_have_text(re.compile(r"^used tool weather_lookup"))
            expect(tool.locator("pre").first).to_be_hidden()  # collapsed until opened
            tool.locator("summary").click()
            expect(tool.locator(".tool-label")).to_have_text(["Arguments", "Result"])
            expect(tool.locator("pre").first).to_contain_text('"query": "weather"')
            if view == "live":
                self.screenshot_save("page-tool-activity.png", full_page=False)
                self.page.reload()
                bubble = self.reply_finished(0)

    def layout_check(self, page: Page) -> dict[str, Any]:
        """The main regions' boxes, and whether any two overlap or anything scrolls sideways."""
        return page.evaluate(
            """() => {
                const box = (selector) => {
                    const r = document.querySelector(selector).getBoundingClientRect();
                    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};
                };
                const boxes = {topbar: box('.topbar'), chat: box('#chat'), composer: box('#composer')};
                const overlaps = [];
                const names = Object.keys(boxes);
                for (const a of names) for (const b of names) {
                    if (a >= b) continue;
                    const p = boxes[a], q = boxes[b];
                    const crossY = p.top < q.bottom - 0.5 && q.top < p.bottom - 0.5;
                    if (crossY && p.left < q.right && q.left < p.right) overlaps.push(a + '/' + b);
                }
                return {
                    overlaps,
                    sideways: document.documentElement.scrollWidth > window.innerWidth,
                    composerBottom: boxes.composer.bottom,
                    height: window.innerHeight,
                    background: getComputedStyle(document.body).backgroundColor,
                };
            }"""
        )

    def test_a_wide_table_on_a_phone_scrolls_in_its_box_and_breaks_no_word(self) -> None:
        context = self.browser.new_context(viewport={"width": 390, "height": 844})
        self.addCleanup(context.close)
        page = self.page = context.new_page()
        self.chat_open()
        header = "| Country | Capital | Population | Internationalization |\n|---|---|---|---|\n"
        rows = "| Netherlands | Amsterdam | 17,900,000 | Internationalization |\n" * 3
        self.standin.script({"reply": header + rows, "delay_ms": 2})
        self.message_send("a table please")
        self.reply_finished(0)
        table = page.locator("#chat .message.assistant .markdown table").first
        expect(table).to_be_visible()
        # Each cell keeps its words whole (one line for a one-word cell); the table scrolls instead.
        lines = table.evaluate(
            """(table) => [...table.querySelectorAll('td')].map((cell) => {
                const range = document.createRange(); range.selectNodeContents(cell.firstChild);
                return range.getClientRects().length; })"""
        )
        assert set(lines) == {1}, lines
        assert table.evaluate("(t) => t.scrollWidth > t.clientWidth")  # wider than the phone: it scrolls
        assert not page.evaluate("() => document.scrollingElement.scrollWidth > innerWidth")  # the page: no
        self.screenshot_save("page-mobile-table.png", full_page=False)

    def test_mobile_and_dark_layouts_render_without_overlap(self) -> None:
        MCPServerPreset.objects.create(label="Web search", target="tavily/search")
        MCPServerPreset.objects.create(label="Weather", target="acme/weather")
        layouts = {
            "mobile-light": {"viewport": {"width": 390, "height": 844}, "color_scheme": "light"},
            "mobile-dark": {"viewport": {"width": 390, "height": 844}, "color_scheme": "dark"},
            "desktop-dark": {"viewport": {"width": 1100, "height": 800}, "color_scheme": "dark"},
        }
        for name, options in layouts.items():
            context = self.browser.new_context(**options)
            self.addCleanup(context.close)
            page = self.page = context.new_page()
            self.chat_open()
            self.standin.script({"reply": JOURNEY_REPLY, "delay_ms": 2})
            if name.startswith("mobile"):
                page.locator("#options-toggle").click()  # a phone folds the controls behind one row
            page.get_by_text("Weather", exact=True).click()  # a chip, switched on
            self.message_send(f"layout check {name}")
            self.reply_finished(0)
            layout = self.layout_check(page)
            assert layout["overlaps"] == [], name
            assert not layout["sideways"], name
            assert layout["composerBottom"] <= layout["height"] + 0.5, name
            red, green, blue = (int(v) for v in re.findall(r"\d+", layout["background"])[:3])
            assert (max(red, green, blue) < 60) == name.endswith("dark"), (name, layout["background"])
            self.screenshot_save(f"page-{name}.png", full_page=False)
            sidebar = page.locator("#sidebar")
            if name.startswith("mobile"):
                expect(sidebar).not_to_be_in_viewport()
                page.locator("#sidebar-open").click()
                expect(sidebar).to_be_in_viewport()
                expect(page.locator("#conversation-list a")).to_have_text([f"layout check {name}"])
                self.screenshot_save(f"page-{name}-drawer.png", full_page=False)
                page.keyboard.press("Escape")
                expect(sidebar).not_to_be_in_viewport()
            else:
                expect(sidebar).to_be_in_viewport()

        # The toggle overrides the system setting, and the choice survives a reload.
        expect(page.locator("#theme-toggle")).to_have_text("☀ Light mode")  # dark now: it offers light
        page.locator("#theme-toggle").click()
        expect(page.locator("html")).to_have_attribute("data-theme", "light")
        page.reload()
        expect(page.locator("html")).to_have_attribute("data-theme", "light")
        expect(page.locator("#theme-toggle")).to_have_text("☾ Dark mode")

    def focus_move_to(self, selector_js: str, key: str = "Tab", limit: int = 60) -> None:
        """Press `key` until the focused element `el` satisfies `selector_js`, a JavaScript predicate."""
        check = f"() => {{ const el = document.activeElement; return Boolean({selector_js}); }}"
        for _ in range(limit):
            if self.page.evaluate(check):
                outline = self.page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
                assert outline != "none", "the focused control shows no focus ring"
                return
            self.page.keyboard.press(key)
        raise AssertionError(f"never reached {selector_js} with {key}")

    def test_keyboard_only_send_and_switch_conversations(self) -> None:
        first = self.chat_open()
        keyboard = self.page.keyboard
        assert self.page.evaluate("() => document.activeElement.id") == "input"
        keyboard.type("first by keyboard")
        keyboard.press("Enter")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))

        self.focus_move_to("el.id === 'new-chat'", key="Shift+Tab")
        keyboard.press("Enter")
        expect(self.page).not_to_have_url(re.compile(rf"/c/{first}/$"))
        expect(self.page.locator("#connection")).to_have_text("connected")
        assert self.page.evaluate("() => document.activeElement.id") == "input"
        keyboard.type("second by keyboard")
        keyboard.press("Shift+Enter")
        keyboard.type("on two lines")
        keyboard.press("Enter")
        expect(self.bubbles("user").locator(".content")).to_have_text("second by keyboard\non two lines")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))

        self.focus_move_to("el.textContent === 'first by keyboard' && el.tagName === 'A'", key="Shift+Tab")
        keyboard.press("Enter")
        expect(self.page).to_have_url(re.compile(rf"/c/{first}/$"))
        expect(self.bubbles("user").locator(".content")).to_have_text("first by keyboard")

        # Escape stops a reply in flight.
        keyboard.type("a long one [[standin tokens=400 delay_ms=20]]")
        keyboard.press("Enter")
        self.stream_samples(1)
        keyboard.press("Escape")
        expect(self.reply_finished(1)).to_have_class(re.compile(r"\binterrupted\b"))
        assert Message.objects.filter(conversation__session_id=first, status="interrupted").count() == 1

    def test_long_conversations_and_long_replies_stay_fast(self) -> None:
        """Measured and written to test-artifacts/browser-performance.json; asserted only for behaviour."""
        self.chat_open()
        session_key = next(c["value"] for c in self.page.context.cookies() if c["name"] == "sessionid")
        owner = Owner(session_key=session_key)
        conversation = Conversation.objects.create(
            session_id="five-hundred", owner_key=owner.key, owner_session_key=owner.session_digest
        )
        parent = None
        for i in range(500):
            role = "user" if i % 2 == 0 else "assistant"
            content = f"question {i}" if role == "user" else f"Answer {i}, **bold** and `code`.\n\n- a\n- b"
            parent = Message.objects.create(
                conversation=conversation, role=role, content=content, parent=parent
            )
        conversation.current_message = parent
        conversation.save()

        self.page.goto(f"{self.live_server_url}/c/five-hundred/")
        expect(self.page.locator("#messages .message")).to_have_count(50)  # the latest page
        expect(self.bubbles("assistant").last.locator(".content")).to_have_text(re.compile(r"^Answer 499,"))
        opened_ms = self.page.evaluate(
            "() => performance.getEntriesByName('chat:history-shown')[0].startTime"
        )
        older_ms = self.page.evaluate(
            """async () => {
                const start = performance.now();
                document.getElementById('chat').scrollTop = 0;
                while (document.querySelectorAll('#messages .message').length < 100)
                    await new Promise(requestAnimationFrame);
                return performance.now() - start;
            }"""
        )
        expect(self.bubbles("user").first.locator(".content")).to_have_text("question 400")

        # The sidebar shows 30 chats, and the rest on "Show more".
        for i in range(31):
            Conversation.objects.create(
                session_id=f"more-{i}",
                owner_key=owner.key,
                owner_session_key=owner.session_digest,
                title=f"c{i}",
            )
        self.page.reload()
        expect(self.page.locator("#conversation-list a")).to_have_count(30)
        self.page.locator("#conversations-more").click()
        expect(self.page.locator("#conversation-list a")).to_have_count(32)  # and the long one
        expect(self.page.locator("#conversations-more")).to_be_hidden()

        # A 20,000-word reply with markdown, streamed as fast as the stand-in can: frames keep coming.
        self.page.goto(f"{self.live_server_url}/")
        expect(self.page.locator("#connection")).to_have_text("connected")
        self.page.evaluate(
            """() => {
                window.longTasks = [];
                new PerformanceObserver((list) => {
                    for (const entry of list.getEntries()) window.longTasks.push(entry.duration);
                }).observe({type: 'longtask'});
                window.frameGaps = [];
                let last = performance.now();
                const tick = (now) => { window.frameGaps.push(now - last); last = now;
                                        if (!window.stopFrames) requestAnimationFrame(tick); };
                requestAnimationFrame(tick);
            }"""
        )
        reply = long_reply(20_000)
        self.standin.script({"reply": reply, "delay_ms": 0.25})
        started = self.page.evaluate("() => performance.now()")
        self.message_send("write a long report")

        # Scrolled up mid-stream, the view stays put and offers a way back to the end.
        self.page.wait_for_function(
            """() => { const c = document.getElementById('chat'), streaming = '.message.streaming';
                       return document.querySelector(streaming) && c.scrollHeight > 3 * c.clientHeight; }"""
        )
        self.page.evaluate("() => { document.getElementById('chat').scrollTop = 0; }")
        jump = self.page.locator("#jump-latest")
        expect(jump).to_be_visible()
        self.stream_samples(1)
        assert self.page.evaluate("() => document.getElementById('chat').scrollTop") < 50
        jump.click()
        self.page.wait_for_function(
            """() => { const c = document.getElementById('chat');
                       return c.scrollHeight - c.scrollTop - c.clientHeight < 60; }"""
        )
        expect(jump).to_be_hidden()
        expect(self.bubbles("assistant").first).to_have_class(re.compile(r"\bcomplete\b"), timeout=120_000)
        bubble = self.reply_finished(0)
        stats = self.page.evaluate(
            """(started) => {
                window.stopFrames = true;
                const gaps = window.frameGaps.slice(1).sort((a, b) => a - b);
                const at = (q) => gaps[Math.min(gaps.length - 1, Math.floor(q * gaps.length))];
                return {stream_ms: performance.now() - started, frames: gaps.length, frame_p50_ms: at(0.5),
                        frame_p99_ms: at(0.99), frame_max_ms: gaps[gaps.length - 1],
                        long_tasks: window.longTasks.length,
                        long_task_max_ms: Math.max(0, ...window.longTasks)};
            }""",
            started,
        )
        expect(bubble.locator("h2")).to_have_count(reply.count("## Part"))
        session_id = CHAT_URL_RE.search(self.page.url)[1]
        stored = Message.objects.get(conversation__session_id=session_id, role="assistant")
        assert words(stored.content) == words(reply)
        results = {
            "open_500_messages_ms": round(opened_ms, 1),
            "older_page_ms": round(older_ms, 1),
            "reply_words": len(reply.split()),
            **{key: round(value, 1) for key, value in stats.items()},
        }
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "browser-performance.json").write_text(json.dumps(results, indent=2))
        print("browser performance:", results)


# Set before the class's live server forks: a per-test override would not reach it.
@override_settings(CHAT_STANDIN_NOTICE=True)
class StandInNoticeTests(browser.ChatBrowserTestCase):
    """What `make run` without a key shows: the notice that replies come from the stand-in."""

    def test_the_standin_notice_is_short_on_a_phone_and_stays_dismissed(self) -> None:
        context = self.browser.new_context(viewport={"width": 390, "height": 844})
        self.addCleanup(context.close)
        page = self.page = context.new_page()
        self.chat_open()
        notice = page.locator("#standin-notice")
        expect(notice).to_be_visible()
        height, line = notice.evaluate(
            "(n) => [n.getBoundingClientRect().height, parseFloat(getComputedStyle(n).lineHeight) || 20]"
        )
        assert height <= 2 * line + 14, (height, line)  # two lines at most, with its padding
        close = page.get_by_role("button", name="Dismiss this notice").bounding_box()
        assert min(close["width"], close["height"]) >= 32, close  # a phone's target, as the other controls
        page.get_by_role("button", name="Dismiss this notice").click()
        expect(notice).to_be_hidden()
        expect(page.locator("#input")).to_be_focused()
        page.reload()
        expect(page.locator("#connection")).to_have_text("connected")
        expect(page.locator("#standin-notice")).to_be_hidden()  # this browser dismissed it for good
