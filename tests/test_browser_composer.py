"""The composer in chromium: MCP servers judged by the server as you type, keyboard shortcuts and their
list, and the compact phone layout."""

from __future__ import annotations

import re

from django.conf import settings
from playwright.sync_api import Page, expect

from conversations.models import Agent, MCPServerPreset, Message

from . import browser

PRIVATE_ADDRESS = "https://10.0.0.7/mcp"
PRIVATE_REFUSAL = "'https://10.0.0.7/mcp': private, loopback and local hosts are not allowed."
PHONE = {"width": 390, "height": 844}
AXE = browser.ROOT / "node_modules" / "axe-core" / "axe.min.js"


def accessibility_violations(page: Page, selector: str) -> list[str]:
    """What axe-core finds wrong inside `selector` (rule id and the first element's HTML), or []."""
    page.evaluate(AXE.read_text())  # evaluated, not a script tag: the page's CSP refuses inline scripts
    results = page.evaluate(
        """async (selector) => {
            const results = await axe.run(selector);
            return {
                passed: results.passes.length,
                violations: results.violations.map((v) => `${v.id}: ${v.nodes[0].html}`),
            };
        }""",
        selector,
    )
    assert results["passed"] > 0, "axe checked nothing there"
    return list(results["violations"])


class McpCheckInChromiumTests(browser.ChatBrowserTestCase):
    """A private address is refused under the field while typing; Send is blocked; the thread stays clean."""

    def test_a_private_address_is_refused_under_the_field_within_a_second_and_nothing_is_sent(self) -> None:
        self.chat_open()
        mcp, error = self.page.locator("#mcp"), self.page.locator("#mcp-error")
        mcp.fill(PRIVATE_ADDRESS)  # the right shape: only the server can tell it is private
        expect(error).to_have_text(PRIVATE_REFUSAL, timeout=1000)
        expect(mcp).to_have_attribute("aria-invalid", "true")

        self.page.locator("#input").fill("hello over a private server")
        self.page.locator("#input").press("Enter")
        expect(mcp).to_be_focused()
        expect(self.page.locator("#input")).to_have_value("hello over a private server")
        expect(self.bubbles("user")).to_have_count(0)
        expect(self.page.locator("#messages .system")).to_have_count(0)
        assert self.standin.requests() == []
        assert Message.objects.count() == 0

        mcp.fill("acme/weather")
        expect(error).to_be_empty()
        expect(mcp).to_have_attribute("aria-invalid", "false")
        self.page.locator("#input").press("Enter")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        assert self.standin.requests()[-1]["body"]["mcp_servers"] == ["acme/weather"]

    def test_the_page_and_the_server_quote_what_was_typed_alike(self) -> None:
        self.chat_open()
        mcp, error = self.page.locator("#mcp"), self.page.locator("#mcp-error")
        mcp.fill("acme/it's")  # the page's own shape check, at once
        expect(error).to_have_text(
            "'acme/it's': An MCP server must be a slug like org/name or an https:// URL."
        )
        mcp.fill("https://10.0.0.7/it's")  # the server's check, once typing pauses
        expect(error).to_have_text(
            "'https://10.0.0.7/it's': private, loopback and local hosts are not allowed."
        )

    def test_the_sockets_refusal_goes_under_the_field_not_into_the_thread(self) -> None:
        self.chat_open()
        # Without the as-you-type check (it fails), Send goes through and the turn itself refuses.
        self.page.route("**/api/mcp-servers/check*", lambda route: route.abort())
        self.page.locator("#mcp").fill(PRIVATE_ADDRESS)
        self.message_send("sent before any check")
        expect(self.page.locator("#mcp-error")).to_have_text(PRIVATE_REFUSAL)
        expect(self.page.locator("#mcp")).to_be_focused()
        expect(self.page.locator("#mcp")).to_have_attribute("aria-invalid", "true")
        expect(self.page.locator("#messages .system")).to_have_count(0)
        expect(self.bubbles("user")).to_have_count(0)
        expect(self.page.locator("#input")).to_have_value("sent before any check")
        assert self.standin.requests() == []
        assert Message.objects.count() == 0


class AgentMcpServersInChromiumTests(browser.ChatBrowserTestCase):
    def test_an_agent_that_keeps_its_own_mcp_servers_names_them_under_the_greyed_controls(self) -> None:
        MCPServerPreset.objects.create(label="Web search", target="tavily/search")
        Agent.objects.create(
            slug="researcher",
            name="Researcher",
            model_names=[browser.CHOSEN_MODEL],
            mcp_servers=["tavily/search", "acme/papers@2", "https://mcp.example.com/sse?key=op-secret-1"],
        )
        Agent.objects.create(slug="plain", name="Plain", model_names=[browser.CHOSEN_MODEL])
        self.chat_open()
        picker, servers = self.page.locator("#model"), self.page.locator("#agent-mcp")
        expect(servers).to_be_hidden()  # a model: the controls are the user's

        picker.select_option("agent:researcher")
        expect(self.page.locator("#mcp")).to_be_disabled()
        # A preset by its label, a slug as written, a URL by its host (its query is the operator's).
        expect(servers).to_have_text(
            "Researcher uses these MCP servers: Web search, acme/papers@2, mcp.example.com"
        )
        expect(servers.locator(".chip")).to_have_text(["Web search", "acme/papers@2", "mcp.example.com"])
        assert "op-secret-1" not in self.page.content()
        # Read with the picker, so a screen reader hears them as the agent is picked.
        # The empty chat's hint no longer offers MCP servers to pick.
        hint = self.page.locator("#empty-chat")
        expect(hint).to_have_text("Ask anything. Researcher answers; pick another agent or a model below.")
        expect(picker).to_have_accessible_description(
            re.compile("Researcher uses these MCP servers: Web search")
        )
        assert accessibility_violations(self.page, "#composer") == []
        self.screenshot_save("agent-mcp-servers.png", full_page=False)

        picker.select_option("agent:plain")
        expect(servers).to_have_text("Plain uses no MCP servers.")
        picker.select_option(browser.CHOSEN_MODEL)
        expect(servers).to_be_hidden()
        expect(self.page.locator("#mcp")).to_be_enabled()
        expect(hint).to_have_text("Ask anything. Pick a model and, if you like, MCP servers below.")


class ShortcutsInChromiumTests(browser.ChatBrowserTestCase):
    """`?` lists the shortcuts; each one does what the list says."""

    def test_question_mark_opens_the_list_and_escape_closes_it_giving_focus_back(self) -> None:
        self.chat_open()
        dialog = self.page.locator("#shortcuts-dialog")
        self.page.keyboard.type("?")  # typing in the message box: just a character
        expect(self.page.locator("#input")).to_have_value("?")
        expect(dialog).to_be_hidden()

        toggle = self.page.locator("#theme-toggle")
        toggle.focus()
        self.page.keyboard.press("?")
        expect(dialog).to_be_visible()
        expect(dialog).to_have_attribute("aria-labelledby", "shortcuts-title")
        for shown in (
            "New chat",
            "Search chats",
            "Copy the last reply",
            "Stop the reply",
            "Focus the message box",
        ):
            expect(dialog).to_contain_text(shown)
        self.screenshot_save("shortcuts.png", full_page=False)
        assert accessibility_violations(self.page, "#shortcuts-dialog") == []
        self.page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(toggle).to_be_focused()

        # The visible control opens it too, and Ctrl+/ works even from the message box.
        self.page.locator("#shortcuts-open").click()
        expect(dialog).to_be_visible()
        self.page.locator("#shortcuts-close").click()
        expect(dialog).to_be_hidden()
        self.page.locator("#input").focus()
        self.page.keyboard.press("Control+/")
        expect(dialog).to_be_visible()
        self.page.keyboard.press("Escape")
        expect(self.page.locator("#input")).to_be_focused()

    def test_each_shortcut_does_its_thing(self) -> None:
        context = self.browser.new_context(
            viewport={"width": 1100, "height": 800}, permissions=["clipboard-read", "clipboard-write"]
        )
        self.addCleanup(context.close)
        page = self.page = context.new_page()
        first = self.chat_open()
        keyboard = page.keyboard
        self.message_send("copy me [[standin reply=The%20answer%20is%20**42**.]]")
        self.reply_finished(0)

        keyboard.press("Control+Shift+C")
        expect(page.locator("#announcer")).to_have_text("Copied the last reply")
        reply = Message.objects.get(conversation__session_id=first, role="assistant")
        assert (
            page.evaluate("() => navigator.clipboard.readText()") == reply.content == "The answer is **42**."
        )

        keyboard.press("Control+k")
        expect(page.locator("#conversation-search")).to_be_focused()
        keyboard.press("Shift+Escape")
        expect(page.locator("#input")).to_be_focused()

        # Escape stops a streaming reply.
        self.message_send("a long one [[standin tokens=400 delay_ms=20]]")
        self.stream_samples(1)
        keyboard.press("Escape")
        expect(self.reply_finished(1)).to_have_class(re.compile(r"\binterrupted\b"))

        keyboard.press("Control+Shift+O")
        expect(page).not_to_have_url(re.compile(rf"/c/{first}/$"))
        expect(page).to_have_url(browser.CHAT_URL_RE)
        expect(page.locator("#connection")).to_have_text("connected")
        expect(page.locator("#input")).to_be_focused()
        expect(self.bubbles("user")).to_have_count(0)


def layout_measure(page: Page) -> dict:
    return page.evaluate(
        """() => {
        const input = document.getElementById('input');
        const style = getComputedStyle(input);
        const probe = document.createElement('span');
        probe.style.font = style.font;
        probe.style.whiteSpace = 'nowrap';
        probe.textContent = input.placeholder;
        document.body.appendChild(probe);
        const placeholderWidth = probe.getBoundingClientRect().width;
        probe.remove();
        const box = (id) => document.getElementById(id).getBoundingClientRect();
        return {
            sideways: document.documentElement.scrollWidth > window.innerWidth,
            height: window.innerHeight,
            chat: box('chat').height,
            placeholderWidth,
            inputRoom: input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight),
            send: [box('send').width, box('send').height],
            attach: [box('attach').width, box('attach').height],
            options: [box('options-toggle').width, box('options-toggle').height],
            composerBottom: box('composer').bottom,
        };
    }"""
    )


class PhoneLayoutInChromiumTests(browser.ChatBrowserTestCase):
    """At 390 x 844 the thread has most of the height; the controls wait behind one row."""

    def test_the_phone_layout_is_compact(self) -> None:
        MCPServerPreset.objects.create(label="Web search", target="tavily/search")
        MCPServerPreset.objects.create(label="Weather", target="acme/weather")
        context = self.browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
        self.addCleanup(context.close)
        page = self.page = context.new_page()
        self.chat_open()
        layout = layout_measure(page)
        assert not layout["sideways"]
        assert layout["chat"] >= 0.55 * layout["height"], layout
        assert layout["placeholderWidth"] <= layout["inputRoom"], layout
        assert min(layout["send"]) >= 44, layout
        assert min(layout["attach"]) >= 44, layout
        assert layout["options"][1] >= 32, layout
        assert layout["composerBottom"] <= layout["height"] + 0.5
        expect(page.locator("#mcp-controls")).to_be_hidden()
        self.screenshot_save("mobile-composer.png", full_page=False)

        toggle = page.locator("#options-toggle")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        page.get_by_text("Weather", exact=True).click()
        expect(toggle).to_contain_text("1 MCP")
        page.locator("#mcp").fill(PRIVATE_ADDRESS)
        expect(page.locator("#mcp-error")).to_have_text(PRIVATE_REFUSAL)
        expect(page.locator("#mcp-error")).to_be_in_viewport()
        assert not layout_measure(page)["sideways"]
        self.screenshot_save("mobile-options.png", full_page=False)
        assert accessibility_violations(page, "#composer") == []
        page.locator("#mcp").fill("")
        expect(page.locator("#mcp-error")).to_be_empty()
        page.locator("#settings-summary").click()
        expect(page.locator("#setting-temperature")).to_be_in_viewport()
        assert not layout_measure(page)["sideways"]
        self.screenshot_save("mobile-settings.png", full_page=False)
        page.locator("#settings-summary").click()
        toggle.click()
        expect(page.locator("#mcp-controls")).to_be_hidden()

        self.message_send("on a phone [[standin tokens=60]]")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        assert self.standin.requests()[-1]["body"]["mcp_servers"] == ["acme/weather"]
        layout = layout_measure(page)
        assert not layout["sideways"]
        assert layout["chat"] >= 0.55 * layout["height"], layout
        self.screenshot_save("mobile-thread.png", full_page=False)

        # Search chats opens the drawer first.
        page.keyboard.press("Control+k")
        expect(page.locator("#sidebar")).to_be_in_viewport()
        expect(page.locator("#conversation-search")).to_be_focused()
        self.screenshot_save("mobile-search.png", full_page=False)


class MessageLengthInChromiumTests(browser.ChatBrowserTestCase):
    def test_a_message_past_the_limit_is_counted_at_the_box_and_held_back(self) -> None:
        self.chat_open()
        most = settings.CHAT_MAX_MESSAGE_CHARS
        count = self.page.locator("#input-count")
        self.page.locator("#input").fill("é" * int(most * 0.5))  # far from the limit: no count
        expect(count).to_be_hidden()
        self.page.locator("#input").fill("é" * (most + 1))  # characters, not UTF-16 units or bytes
        expect(count).to_have_text(f"{most + 1} / {most} characters: shorten it to send")
        expect(self.page.locator("#input")).to_have_attribute("aria-invalid", "true")
        self.page.locator("#input").press("Enter")
        expect(self.page.locator("#input")).to_be_focused()
        self.page.wait_for_timeout(300)
        expect(self.bubbles("user")).to_have_count(0)
        expect(self.page.locator("#messages .system")).to_have_count(0)  # no refusal in the thread
        assert self.standin.requests() == []
        self.page.locator("#input").fill("é" * most)  # at the limit: counted, sent
        expect(count).to_have_text(f"{most} / {most} characters")
        self.page.locator("#input").press("Enter")
        expect(self.bubbles("user")).to_have_count(1)
        expect(count).to_be_hidden()  # the box is empty again

    def test_the_buttons_beside_a_grown_box_keep_their_size_at_its_foot(self) -> None:
        self.chat_open()
        boxes = """() => Object.fromEntries(['input', 'attach', 'send'].map((id) => {
            const box = document.getElementById(id).getBoundingClientRect();
            return [id, {height: box.height, bottom: box.bottom}];
        }))"""
        empty = self.page.evaluate(boxes)
        self.page.locator("#input").fill("line\n" * 30)  # the box grows to 40% of the window
        grown = self.page.evaluate(boxes)
        assert grown["input"]["height"] > 3 * empty["input"]["height"], grown
        for button in ("attach", "send"):
            assert grown[button]["height"] == empty[button]["height"], (button, empty, grown)
            assert abs(grown[button]["bottom"] - grown["input"]["bottom"]) <= 1, (button, grown)
