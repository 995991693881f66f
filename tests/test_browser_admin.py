"""The admin as an operator sees it, in Debian chromium at 1280x800: the usage charts draw and follow the
date filter, in light and dark themes; every list and change page fits the window; a conversation's
messages fit the page and stay read-only."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from conversations.models import (
    Agent,
    Attachment,
    Budget,
    ChatModel,
    Conversation,
    Feedback,
    MCPServerPreset,
    Message,
)
from conversations.usage_ledger import reply_entries_write

from . import browser
from .browser import expect
from .processes import ROOT

pytestmark = pytest.mark.browser

ADMIN_VIEWPORT = {"width": 1280, "height": 800}
LONG_TEXT = "A long message that goes on and on without a break " * 40
LONG_NAME = "an-unusually-long-model-or-file-name-" * 4
UNBROKEN = "https://example.com/" + "x" * 400

# True once every pixel row of the canvas has been read and at least one pixel is not transparent.
CANVAS_DRAWN = """(id) => {
    const canvas = document.getElementById(id);
    if (!canvas || !canvas.width || !canvas.height) return false;
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
    return false;
}"""
CHART_LABELS = "(id) => Chart.getChart(id).data.labels"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
# axe-core's WCAG A/AA rules on the parts of the usage page this project adds.
AXE_RUN = """async () => {
    const result = await axe.run(
        { include: [['.usage-charts'], ['.date-range-filter'], ['.usage-summaries']] },
        { runOnly: ['wcag2a', 'wcag2aa'] });
    return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(' ')}`);
}"""
PAGE_FITS = "() => document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth"
# A list's table fits its box too: nothing hidden behind a scrollbar of its own.
RESULTS_FIT = """() => [...document.querySelectorAll('#changelist .results')]
    .every((box) => box.scrollWidth <= box.clientWidth)"""


def day_at_noon(days_ago: int) -> datetime:
    return timezone.make_aware(
        datetime.combine(date.today() - timedelta(days=days_ago), datetime.min.time())
    ) + (timedelta(hours=12))


def reply_stored(
    conversation: Conversation, *, model: str, tokens: tuple[int, int], days_ago: int
) -> Message:
    prompt, completion = tokens
    reply = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content=LONG_TEXT,
        model=model,
        status="complete",
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cost=Decimal("0.0125") * (prompt + completion) / 100,
        created_at=day_at_noon(days_ago),
    )
    reply_entries_write([reply.pk])  # as its end writes it
    return reply


class AdminPagesTests(browser.ChatBrowserTestCase):
    def setUp(self) -> None:
        super().setUp()
        user_model = get_user_model()
        user_model.objects.create_superuser("operator", "op@example.com", "pw-for-tests-only")
        alice = user_model.objects.create_user("alice", password="pw-for-tests-only")
        self.conversation = Conversation.objects.create(
            session_id="adm1",
            owner_key=f"u:{alice.pk}",
            user=alice,
            title="A conversation with a title long enough to need cutting " * 3,
            model="openai/gpt-5.1",
            mcp_servers=["acme/search", "acme/web@2"],
        )
        Message.objects.create(conversation=self.conversation, role="user", content=LONG_TEXT)
        Message.objects.create(  # a line with no break: a pasted URL, a hash, base64
            conversation=self.conversation, role="user", content=UNBROKEN, error=UNBROKEN
        )
        for days_ago, model, tokens in [
            (0, "openai/gpt-5.1", (400, 600)),
            (1, "anthropic/claude-opus-4-5-20251101", (300, 200)),
            (5, "openai/gpt-5.1", (100, 100)),
        ]:
            reply = reply_stored(self.conversation, model=model, tokens=tokens, days_ago=days_ago)
        anonymous = Conversation.objects.create(
            session_id="adm2", owner_key="s:abcdef", model="openai/gpt-5.1"
        )
        reply_stored(anonymous, model="openai/gpt-5.1", tokens=(50, 50), days_ago=1)
        Feedback.objects.create(message=reply, rating=Feedback.Rating.DOWN, comment=LONG_TEXT)
        MCPServerPreset.objects.create(label="Search", target="acme/search", description=LONG_TEXT)
        Agent.objects.create(
            slug="helper",
            name="Helper",
            description=LONG_TEXT,
            instructions=LONG_TEXT,
            model_names=[LONG_NAME],
        )
        ChatModel.objects.create(name=LONG_NAME, label=LONG_NAME[:100], position=50)
        Attachment.objects.create(
            owner_key="s:abcdef", name=LONG_NAME + ".pdf", kind="pdf", content_type="application/pdf", size=10
        )
        self.page.set_viewport_size(ADMIN_VIEWPORT)

    def admin_login(self) -> None:
        self.page.goto(f"{self.live_server_url}/admin/login/?next=/admin/")
        self.page.locator("#id_username").fill("operator")
        self.page.locator("#id_password").fill("pw-for-tests-only")
        self.page.locator("input[type=submit]").click()
        expect(self.page.locator("#site-name")).to_be_visible()

    def charts_drawn(self) -> None:
        for chart in ["usage-chart-day", "usage-chart-model", "usage-chart-user"]:
            self.page.wait_for_function(CANVAS_DRAWN, arg=chart)

    def test_usage_charts_draw_the_filtered_rows_and_follow_the_date_filter(self) -> None:
        self.admin_login()
        self.page.goto(f"{self.live_server_url}/admin/conversations/dailyusage/")
        self.charts_drawn()
        days = [(date.today() - timedelta(days=n)).isoformat() for n in (5, 1, 0)]
        assert self.page.evaluate(CHART_LABELS, "usage-chart-day") == days
        assert sorted(self.page.evaluate(CHART_LABELS, "usage-chart-user")) == ["alice", "anonymous"]
        assert self.page.evaluate(PAGE_FITS)
        self.screenshot_save("admin-usage-charts.png")

        self.page.locator("#range-day-from").fill(days[1])
        self.page.locator("#range-day-to").fill(days[1])
        self.page.locator("#range-day button[type=submit]").click()
        expect(self.page.locator("#range-day-from")).to_have_value(days[1])
        self.charts_drawn()
        assert self.page.evaluate(CHART_LABELS, "usage-chart-day") == [days[1]]
        assert sorted(self.page.evaluate(CHART_LABELS, "usage-chart-model")) == [
            "anthropic/claude-opus-4-5-20251101",
            "openai/gpt-5.1",
        ]
        expect(self.page.locator("#result_list tbody tr")).to_have_count(2)

        self.page.get_by_role("radio", name="Cost (USD)").check()
        datasets = self.page.evaluate("() => Chart.getChart('usage-chart-day').data.datasets[0].data")
        assert datasets == [pytest.approx(float(Decimal("0.0125") * 6))]
        self.charts_drawn()
        self.screenshot_save("admin-usage-charts-filtered.png")

        self.page.emulate_media(color_scheme="dark")
        self.page.reload()
        self.charts_drawn()
        tick_colour = self.page.evaluate(
            "() => Chart.getChart('usage-chart-day').options.scales.x.ticks.color"
        )
        body_colour = self.page.evaluate(
            "() => getComputedStyle(document.documentElement).getPropertyValue('--body-quiet-color').trim()"
        )
        assert tick_colour == body_colour
        self.screenshot_save("admin-usage-charts-dark.png")

    def test_the_usage_page_reads_aloud_and_passes_axe_in_light_and_dark(self) -> None:
        self.admin_login()
        for scheme in ["light", "dark"]:
            self.page.emulate_media(color_scheme=scheme)
            self.page.goto(f"{self.live_server_url}/admin/conversations/dailyusage/")
            self.charts_drawn()
            # Evaluated, not added as a <script>: the page's CSP refuses inline scripts, as it should.
            self.page.evaluate(AXE.read_text())
            assert self.page.evaluate(AXE_RUN) == [], scheme
        day_chart = self.page.locator("#usage-chart-day")
        # What a screen reader announces for the chart's image: its summary sentence.
        expect(day_chart).to_have_accessible_name(
            f"Tokens per day, 3 days: 1,800 in all, the most for {date.today().isoformat()} (1,000).",
        )
        self.page.get_by_role("radio", name="Replies").focus()
        self.page.keyboard.press("ArrowRight")  # the radio group moves and checks with the arrows
        expect(self.page.get_by_role("radio", name="Cost (USD)")).to_be_checked()
        expect(day_chart).to_have_accessible_name(re.compile(r"^Cost \(USD\) per day, 3 days: \$0\.2250"))
        expect(self.page.locator("#usage-by-day tbody tr")).to_have_count(3)

    def test_every_list_and_change_page_fits_1280_pixels(self) -> None:
        self.admin_login()
        team = Group.objects.create(name="research-and-development-platform-team")
        team.user_set.add(get_user_model().objects.create_user("a-member-with-a-rather-long-username"))
        Budget.objects.create(group=team, unit="usd", amount=Decimal("1250.50"), period="month")
        pages = {
            "conversations": Conversation.objects.get(session_id="adm1").pk,
            "messages": Message.objects.filter(role="assistant").first().pk,
            "chat-models": ChatModel.objects.get(name=LONG_NAME).pk,
            "agents": Agent.objects.get().pk,
            "mcp-presets": MCPServerPreset.objects.get().pk,
            "attachments": Attachment.objects.get().pk,
            "feedback": Feedback.objects.get().pk,
            "budgets": Budget.objects.get().pk,
        }
        paths = {
            "conversations": "conversation",
            "messages": "message",
            "chat-models": "chatmodel",
            "agents": "agent",
            "mcp-presets": "mcpserverpreset",
            "attachments": "attachment",
            "feedback": "feedback",
            "budgets": "budget",
        }
        overflowing = []
        for name, pk in pages.items():
            base = f"{self.live_server_url}/admin/conversations/{paths[name]}/"
            for kind, url in [("list", base), ("change", f"{base}{pk}/change/")]:
                self.page.goto(url)
                expect(self.page.locator("#content")).to_be_visible()
                self.screenshot_save(f"admin-{name}-{kind}.png")
                if not self.page.evaluate(PAGE_FITS) or not self.page.evaluate(RESULTS_FIT):
                    overflowing.append(f"{name} {kind}")
        for name in ["dailyusage", "mcpcredential", "userquota"]:
            self.page.goto(f"{self.live_server_url}/admin/conversations/{name}/")
            if not self.page.evaluate(PAGE_FITS) or not self.page.evaluate(RESULTS_FIT):
                overflowing.append(f"{name} list")
        assert overflowing == []

    def test_a_conversations_messages_fit_the_page_and_are_read_only(self) -> None:
        self.admin_login()
        self.page.goto(
            f"{self.live_server_url}/admin/conversations/conversation/{self.conversation.pk}/change/"
        )
        inline = self.page.locator("#messages-group")
        expect(inline).to_be_visible()
        box = inline.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= ADMIN_VIEWPORT["width"]
        assert self.page.evaluate(PAGE_FITS)
        assert inline.locator("input:not([type=hidden]), textarea, select").count() == 0
        expect(inline.locator(".add-row")).to_be_hidden()
        expect(self.page.get_by_text("acme/search, acme/web@2")).to_be_visible()
        preview = inline.locator("td.field-content_preview").first
        assert preview.evaluate("(cell) => cell.scrollWidth <= cell.clientWidth + 1")
        assert preview.inner_text().endswith("…")
        self.screenshot_save("admin-conversation-messages.png")


class AgentFormTests(browser.ChatBrowserTestCase):
    """An agent built in the admin's form, as an operator does it, then picked on the chat page."""

    def setUp(self) -> None:
        super().setUp()
        get_user_model().objects.create_superuser("operator", "op@example.com", "pw-for-tests-only")
        MCPServerPreset.objects.create(label="Search", target="acme/search", position=0)
        MCPServerPreset.objects.create(label="Files", target="acme/files@2", position=1)
        ChatModel.objects.filter(name=browser.CHOSEN_MODEL).update(output_token_limit=8000)
        self.page.set_viewport_size(ADMIN_VIEWPORT)

    def test_an_agent_built_in_the_form_is_offered_and_answers_on_the_chat_page(self) -> None:
        page = self.page
        page.goto(f"{self.live_server_url}/admin/login/?next=/admin/conversations/agent/add/")
        page.locator("#id_username").fill("operator")
        page.locator("#id_password").fill("pw-for-tests-only")
        page.locator("input[type=submit]").click()
        expect(page.get_by_role("heading", name="Add agent")).to_be_visible()

        page.get_by_label("Name:").press_sequentially("Form Researcher")
        expect(page.get_by_label("Slug:")).to_have_value("form-researcher")  # filled from the name
        page.get_by_label("Description:").fill("Built in the admin's form.")
        expect(page.get_by_label("No colour")).to_be_checked()
        page.get_by_label("Colour:").fill("#7c3aed")
        expect(page.get_by_label("No colour")).not_to_be_checked()  # picking a colour unticks it
        page.get_by_label("Instructions:").fill("Answer as the form researcher.")

        # The handoff rows: one blank row shows, and one more for each filled.
        rows = page.locator("[data-agent-handoffs] li")
        expect(rows.filter(visible=True)).to_have_count(1)
        page.get_by_label("First model:").select_option("openai/gpt-5.1")
        max_tokens = page.get_by_label("Max tokens:")
        expect(max_tokens).to_have_attribute("max", "1000000")
        page.get_by_label("Handoff model 1").select_option(browser.CHOSEN_MODEL)
        expect(rows.filter(visible=True)).to_have_count(2)
        expect(max_tokens).to_have_attribute("max", "8000")  # the handoff model's output limit
        expect(page.locator("[data-agent-output-limit]")).to_have_text("now 8,000")

        page.get_by_label("Temperature:").fill("0.4")
        max_tokens.fill("20000")
        page.get_by_label("Reasoning effort:").select_option("high")
        page.get_by_label("Search (acme/search)").check()
        page.get_by_label("Other MCP servers:").fill("acme/web@1\nhttp://10.0.0.1/mcp")
        page.get_by_role("button", name="Save", exact=True).click()

        # Refused, each mistake next to its field, in words; what was typed is still there.
        max_row = page.locator(".form-row.field-max_tokens")
        expect(max_row.locator(".errorlist")).to_have_text(
            f"At most 8,000 for these models: the catalog's output limit of {browser.CHOSEN_MODEL} "
            "is lower than 20,000."
        )
        expect(page.locator(".form-row.field-mcp_typed .errorlist")).to_have_text(
            "Line 2 (http://10.0.0.1/mcp): An MCP server must be a slug like org/name or an https:// URL."
        )
        expect(page.get_by_label("Handoff model 1")).to_have_value(browser.CHOSEN_MODEL)
        expect(page.get_by_label("Colour:")).to_have_value("#7c3aed")
        assert not Agent.objects.exists()
        self.screenshot_save("admin-agent-form-errors.png")

        max_tokens.fill("4000")
        page.get_by_label("Other MCP servers:").fill("acme/web@1")
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator(".messagelist .success")).to_contain_text("Form Researcher")
        page.get_by_role(
            "link", name="Form Researcher", exact=True
        ).click()  # the saved agent, back in its fields
        expect(page.get_by_label("Handoff model 1")).to_have_value(browser.CHOSEN_MODEL)
        expect(page.get_by_label("Max tokens:")).to_have_value("4000")
        assert page.evaluate(PAGE_FITS)
        self.screenshot_save("admin-agent-form.png")

        agent = Agent.objects.get(slug="form-researcher")
        assert agent.model_names == ["openai/gpt-5.1", browser.CHOSEN_MODEL]
        assert agent.settings == {"temperature": 0.4, "max_tokens": 4000, "reasoning_effort": "high"}
        assert agent.mcp_servers == ["acme/search", "acme/web@1"]
        assert agent.colour == "#7c3aed"

        # The chat page offers it; picked, it answers with its instructions, models and settings.
        self.chat_open()
        page.locator("#model").select_option("agent:form-researcher")
        expect(page.locator("#agent-description")).to_have_text("Built in the admin's form.")
        self.message_send("who built you?")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        (request,) = self.standin.requests()
        assert request["body"]["model"] == ["openai/gpt-5.1", browser.CHOSEN_MODEL]
        assert request["body"]["messages"][0] == {
            "role": "system",
            "content": "Answer as the form researcher.",
        }
        assert (request["body"]["temperature"], request["body"]["max_tokens"]) == (0.4, 4000)
        name = self.bubbles("assistant").first.locator(".agent-name")
        expect(name).to_have_text("Form Researcher")
        expect(name).to_have_attribute("style", re.compile("#7c3aed"))
