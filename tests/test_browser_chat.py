"""The chat page in Debian chromium, against a live Daphne serving the real ASGI app on the test database."""

from __future__ import annotations

import json
import re
import tempfile
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from conversations.models import Agent, ChatModel, Conversation, MCPServerPreset, Message

from . import browser
from .browser import CHAT_URL_RE, CHOSEN_MODEL, TOKENS_RE, expect, words

pytestmark = pytest.mark.browser


class ChatPageInChromiumTests(browser.ChatBrowserTestCase):
    # --- tests ---

    def test_a_reply_grows_on_screen_then_is_stored_and_survives_a_reload(self) -> None:
        session_id = self.chat_open()
        self.page.locator("#model").select_option(CHOSEN_MODEL)
        # Plain text (the echo), so the words shown are the words stored.
        text = "tell me a story [[standin tokens=80 delay_ms=25 echo=1]]"
        self.message_send(text)

        # Two samples of the bubble's text, each taken while it streams and the stop button shows.
        first, second = self.stream_samples(2)
        assert 0 < first < second
        self.screenshot_save("browser-chat-streaming.png", full_page=False)

        bubble = self.reply_finished(0)
        expect(bubble).to_have_class(re.compile(r"\bcomplete\b"))
        expect(bubble.locator(".status")).to_have_text(TOKENS_RE)
        expect(self.page.locator("#input")).to_have_value("")
        shown_user = self.bubbles("user").locator(".content").text_content()
        shown_reply = words(bubble.locator(".content").text_content())
        shown_status = bubble.locator(".status").text_content()
        assert second < len(shown_reply)
        self.screenshot_save("browser-chat-streamed.png")

        conversation = Conversation.objects.get(session_id=session_id)
        user, reply = Message.objects.history(conversation)
        assert (user.role, user.content) == ("user", shown_user)
        assert shown_user == text
        assert (reply.role, reply.status, words(reply.content)) == ("assistant", "complete", shown_reply)
        assert shown_reply.startswith("You said: tell me a story ")
        assert reply.completion_tokens == 80
        assert shown_status == f"{reply.total_tokens} tokens"
        assert (conversation.model, user.model, reply.model) == (CHOSEN_MODEL,) * 3
        (request,) = self.standin.requests()
        assert request["body"]["model"] == CHOSEN_MODEL
        assert request["body"]["messages"] == [{"role": "user", "content": text}]
        assert request["outcome"] == "completed"

        self.page.reload()
        expect(self.page.locator("#connection")).to_have_text("connected")
        expect(self.bubbles("user")).to_have_count(1)
        expect(self.bubbles("assistant")).to_have_count(1)
        assert self.bubbles("user").locator(".content").text_content() == shown_user
        assert words(self.bubbles("assistant").locator(".content").text_content()) == shown_reply
        expect(self.bubbles("assistant").locator(".status")).to_have_text(shown_status)
        expect(self.page.locator("#model")).to_have_value(CHOSEN_MODEL)

    def test_markup_in_messages_and_replies_is_shown_as_text_never_run(self) -> None:
        response = self.page.goto(f"{self.live_server_url}/c/xss-check/")
        assert response is not None
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        expect(self.page.locator("#connection")).to_have_text("connected")
        markup = "<img src=x onerror=alert(1)>"
        self.message_send(markup)
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        self.message_send("<script>window.pwned = true; alert(3)</script>")
        expect(self.reply_finished(1)).to_have_class(re.compile(r"\bcomplete\b"))
        self.message_send("[[standin reply=%3Cscript%3Ealert(2)%3C%2Fscript%3E%3Cb%3Ebold%3C%2Fb%3E]]")
        expect(self.reply_finished(2)).to_have_class(re.compile(r"\bcomplete\b"))
        # Even markup put into the page by hand cannot run inline script under the policy.
        self.page.evaluate(
            """() => { const s = document.createElement('script');
                       s.textContent = 'window.pwned = true'; document.body.appendChild(s); }"""
        )
        assert self.page.evaluate("() => window.pwned === undefined")

        for view in ("live", "reloaded"):
            user_bubble = self.bubbles("user").first
            expect(user_bubble.locator(".content")).to_have_text(markup)
            expect(user_bubble.get_by_text(markup, exact=True)).to_be_visible()
            replies = self.bubbles("assistant").locator(".content")
            expect(replies.nth(0)).to_have_text(re.compile("^" + re.escape(f"You asked: “{markup}”. ")))
            expect(replies.nth(2)).to_have_text("<script>alert(2)</script><b>bold</b>")
            expect(self.bubbles("user").nth(1).locator(".content")).to_have_text(
                "<script>window.pwned = true; alert(3)</script>"
            )
            expect(self.page.locator("#chat img, #chat script, #chat b")).to_have_count(0)
            assert self.dialogs == [], view
            if view == "live":
                self.screenshot_save("browser-chat-markup.png")
                self.page.reload()
                expect(self.page.locator("#connection")).to_have_text("connected")
                expect(self.bubbles("assistant")).to_have_count(3)

    def test_an_upstream_failure_shows_an_error_and_the_next_message_still_works(self) -> None:
        session_id = self.chat_open()
        self.message_send("this one breaks [[standin status=500]]")
        failed = self.reply_finished(0)
        expect(failed).to_have_class(re.compile(r"\berror\b"))
        expect(failed.locator(".status")).to_have_text(re.compile(r"^Error: .*500"))
        expect(self.page.locator("#send")).to_be_enabled()
        # The failed message stays, says it will not go with later messages, and keeps its Edit.
        asked = self.bubbles("user").first
        expect(asked.locator(".unsent-note")).to_have_text(re.compile(r"^Not sent with later messages"))
        expect(asked.locator("[data-action=edit]")).to_be_visible()
        expect(failed.locator("[data-action=regenerate]")).to_have_text("Retry")

        self.message_send("and this one works")
        recovered = self.reply_finished(1)
        expect(recovered).to_have_class(re.compile(r"\bcomplete\b"))
        expect(recovered.locator(".content")).to_have_text(re.compile(r"^You asked: “and this one works”"))
        expect(recovered.locator(".status")).to_have_text(TOKENS_RE)
        expect(self.page.locator("#chat .unsent-note")).to_have_count(1)  # the working one has none
        self.screenshot_save("browser-chat-upstream-error.png")
        self.page.reload()  # from the history frame: the same note on the same message
        expect(self.bubbles("assistant")).to_have_count(2)
        expect(self.bubbles("user").first.locator(".unsent-note")).to_be_visible()
        expect(self.page.locator("#chat .unsent-note")).to_have_count(1)

        conversation = Conversation.objects.get(session_id=session_id)
        statuses = [(m.role, m.status, m.error_code) for m in Message.objects.history(conversation)]
        assert statuses == [
            ("user", "complete", ""),
            ("assistant", "error", "upstream_error"),
            ("user", "complete", ""),
            ("assistant", "complete", ""),
        ]
        *failures, success = self.standin.requests()
        assert failures  # the first attempt and the SDK's retries
        assert {request["outcome"] for request in failures} == {"error_status"}
        assert success["outcome"] == "completed"
        # The failed message is not glued to the next one: the request carries the new message only.
        assert success["body"]["messages"] == [{"role": "user", "content": "and this one works"}]

    def test_a_reload_mid_reply_shows_the_reply_continue_to_its_stored_end(self) -> None:
        session_id = self.chat_open()
        self.message_send("resume me [[standin stamp=1 tokens=150 delay_ms=20]]")
        self.page.wait_for_function(
            """() => {
                const bubble = document.querySelector('#chat .message.assistant.streaming .content');
                return bubble && bubble.textContent.length > 40;
            }"""
        )
        self.page.reload()  # mid-reply: the reply belongs to the server and goes on
        expect(self.page.locator("#connection")).to_have_text("connected")
        bubble = self.reply_finished(0)
        expect(bubble).to_have_class(re.compile(r"\bcomplete\b"))
        shown = words(bubble.locator(".content").text_content())
        reply = Message.objects.get(conversation__session_id=session_id, role="assistant")
        assert shown == words(reply.content)
        assert [int(i) for i in re.findall(r"(\d+)@\d+", shown)] == list(range(150))
        expect(self.bubbles("user")).to_have_count(1)

    def test_a_dropped_connection_mid_reply_reconnects_and_resumes_without_duplicates(self) -> None:
        session_id = self.chat_open()
        self.message_send("flaky network [[standin stamp=1 tokens=150 delay_ms=20]]")
        self.page.wait_for_function(
            """() => {
                const bubble = document.querySelector('#chat .message.assistant.streaming .content');
                return bubble && bubble.textContent.length > 40;
            }"""
        )
        # Every state the indicator shows, however briefly (a reconnect to localhost can take milliseconds).
        self.page.evaluate(
            """() => {
                const indicator = document.getElementById('connection');
                window.connectionStates = [];
                new MutationObserver(() => window.connectionStates.push(indicator.textContent))
                    .observe(indicator, {childList: true, characterData: true, subtree: true});
            }"""
        )
        self.page.context.set_offline(True)  # the page's socket dies; the page shows it and retries
        self.page.wait_for_function("() => window.connectionStates.includes('reconnecting…')")
        self.page.context.set_offline(False)
        expect(self.page.locator("#connection")).to_have_text("connected")
        bubble = self.reply_finished(0)
        shown = words(bubble.locator(".content").text_content())
        reply = Message.objects.get(conversation__session_id=session_id, role="assistant")
        assert (reply.status, shown) == ("complete", words(reply.content))
        assert [int(i) for i in re.findall(r"(\d+)@\d+", shown)] == list(range(150))
        assert Message.objects.filter(conversation__session_id=session_id, role="user").count() == 1

    def test_logging_in_from_the_chat_page_keeps_the_conversation(self) -> None:
        session_id = self.chat_open()
        self.message_send("before I log in")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        get_user_model().objects.create_user("frank", password="pw-for-tests-only")
        self.page.get_by_role("link", name="Log in", exact=True).click()
        expect(self.page.get_by_role("heading", name="Log in")).to_be_visible()
        self.page.get_by_label("Username").fill("frank")
        self.page.get_by_label("Password").fill("pw-for-tests-only")
        self.screenshot_save("browser-login.png", full_page=False)
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page).to_have_url(re.compile(rf"/c/{session_id}/$"))
        expect(self.page.locator("#connection")).to_have_text("connected")
        expect(self.bubbles("user").locator(".content")).to_have_text("before I log in")
        expect(self.page.locator(".account-name")).to_have_text("frank")
        conversation = Conversation.objects.get(session_id=session_id)
        assert conversation.user is not None
        assert conversation.user.username == "frank"

    def test_signing_in_at_the_admin_keeps_the_chats_started_before(self) -> None:
        session_id = self.chat_open()
        self.message_send("before the admin")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        get_user_model().objects.create_superuser("olga", password="pw-for-tests-only")
        self.page.goto(f"{self.live_server_url}/admin/")
        self.page.get_by_label("Username").fill("olga")
        self.page.get_by_label("Password").fill("pw-for-tests-only")
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page.locator("#user-tools")).to_contain_text("olga")
        # Back on the chat: the sidebar lists it, and its URL opens its messages.
        self.page.goto(f"{self.live_server_url}/c/{session_id}/")
        expect(self.page.locator("#connection")).to_have_text("connected")
        expect(self.bubbles("user").locator(".content")).to_have_text("before the admin")
        expect(self.page.locator("#conversation-list")).to_contain_text("before the admin")
        assert Conversation.objects.get(session_id=session_id).user.username == "olga"

    def test_the_default_agent_of_an_agents_file_answers_a_new_chats_first_message(self) -> None:
        """The picker shows the house agent from the first paint and keeps it once the socket's history
        arrives, so the first message goes to it, not to the default model."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "agents.json"
            house = {"slug": "house", "name": "House", "instructions": "Be the house agent."}
            path.write_text(json.dumps({"agents": [{**house, "models": [CHOSEN_MODEL], "default": True}]}))
            call_command("agents_load", str(path), stdout=StringIO())
        session_id = self.chat_open()
        self.page.wait_for_timeout(500)  # past the history frame, which once switched the picker away
        expect(self.page.locator("#model")).to_have_value("agent:house")

        self.message_send("who answers?")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        (request,) = self.standin.requests()
        assert request["body"]["model"] == CHOSEN_MODEL  # one model: sent as its id
        assert request["body"]["messages"][0] == {"role": "system", "content": "Be the house agent."}
        reply = Message.objects.get(conversation__session_id=session_id, role="assistant")
        assert reply.agent_slug == "house"
        expect(self.bubbles("assistant").first.locator(".agent-name")).to_have_text("House")

    def test_an_agent_picked_in_the_picker_answers_with_its_instructions_and_models(self) -> None:
        Agent.objects.create(
            slug="researcher",
            name="Researcher",
            description="Finds sources and cites them.",
            instructions="Cite every claim.",
            model_names=["openai/gpt-5.1", CHOSEN_MODEL],
            colour="#7c3aed",
        )
        session_id = self.chat_open()
        description = self.page.locator("#agent-description")
        expect(description).to_be_hidden()
        self.page.locator("#model").select_option("agent:researcher")
        expect(description).to_have_text("Finds sources and cites them.")
        expect(self.page.locator("#mcp")).to_be_disabled()  # the agent brings its own MCP servers
        self.screenshot_save("browser-agent-picker.png", full_page=False)

        self.message_send("what is new? [[standin tokens=12 handoff_after=5]]")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))

        (request,) = self.standin.requests()
        assert request["body"]["model"] == ["openai/gpt-5.1", CHOSEN_MODEL]
        assert request["body"]["messages"][0] == {"role": "system", "content": "Cite every claim."}
        reply = Message.objects.get(conversation__session_id=session_id, role="assistant")
        assert (reply.agent_slug, reply.served_models) == ("researcher", ["openai/gpt-5.1", CHOSEN_MODEL])
        # The reply names its agent (in its colour) and the models that wrote it, the handoff marked.
        agent = self.bubbles("assistant").first.locator(".agent-name")
        expect(agent).to_have_text("Researcher")
        expect(agent).to_have_attribute("style", re.compile("#7c3aed"))
        assert "Cite every claim." not in self.page.content()  # instructions never reach the page
        served = self.bubbles("assistant").first.locator(".model")
        expect(served).to_have_text("GPT-5.1 → Opus 4.5")  # the models' labels
        expect(served).to_have_class(re.compile(r"\bhandoff\b"))
        # ... and marks the place in the text where the second model took over.
        content = self.bubbles("assistant").first.locator(".content")
        expect(content.locator(".handoff-marker")).to_have_text("↪ handed off to Opus 4.5")
        before, after = content.evaluate(
            "c => { const m = c.querySelector('.handoff-marker');"
            " const text = (nodes) => nodes.map((n) => n.textContent).join('');"
            " const all = Array.from(c.childNodes); const i = all.indexOf(m);"
            " return [text(all.slice(0, i)), text(all.slice(i + 1))]; }"
        )
        stored = Message.objects.get(conversation__session_id=session_id, role="assistant")
        offset = stored.handoff_offsets[0]
        assert (words(before), words(after)) == (
            words(stored.content[:offset]),
            words(stored.content[offset:]),
        )
        self.screenshot_save("browser-agent-handoff.png", full_page=False)

        self.page.reload()
        expect(self.page.locator("#connection")).to_have_text("connected")
        expect(self.page.locator("#model")).to_have_value("agent:researcher")
        expect(description).to_have_text("Finds sources and cites them.")
        expect(self.bubbles("assistant").first.locator(".model")).to_have_text("GPT-5.1 → Opus 4.5")
        expect(self.bubbles("assistant").first.locator(".handoff-marker")).to_have_count(1)  # from history

        # A refusal shows as such, and the usage detail names reasoning and cached tokens.
        self.page.locator("#model").select_option(CHOSEN_MODEL)
        self.message_send("[[standin refusal=1 reply=I%20cannot. reasoning_tokens=4 cached_tokens=2]]")
        refused = self.reply_finished(1)
        expect(refused.locator(".badge")).to_have_text("Refused")
        expect(refused.locator(".status")).to_have_attribute("title", re.compile(r"4 reasoning, 2 cached$"))

    def test_a_user_adds_their_own_mcp_key_in_the_page_and_it_reaches_the_server_never_the_page(self) -> None:
        MCPServerPreset.objects.create(
            label="GitHub", target="acme/github", user_credentials=True, credential_names=["token"]
        )
        get_user_model().objects.create_user("grace", password="pw-for-tests-only")
        self.page.goto(f"{self.live_server_url}/accounts/login/?next=/c/keys/")
        self.page.get_by_label("Username").fill("grace")
        self.page.get_by_label("Password").fill("pw-for-tests-only")
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page.locator("#connection")).to_have_text("connected")

        self.page.get_by_label("GitHub", exact=True).check()
        self.message_send("list my repos")  # no key yet: the page asks for it instead of sending
        dialog = self.page.locator("#credentials-dialog")
        expect(dialog).to_be_visible()
        dialog.get_by_label("token").fill("ghp-browser-secret-42")
        self.screenshot_save("browser-mcp-credentials.png", full_page=False)
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_hidden()
        expect(self.page.get_by_role("button", name="Your credentials for GitHub")).to_have_text("Key saved")

        self.page.locator("#send").click()  # the message waited in the box
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        (request,) = self.standin.requests()
        assert request["mcp_credentials"] == {
            "acme/github": {"acme-github": {"token": "ghp-browser-secret-42"}}
        }
        self.page.reload()
        expect(self.page.locator("#connection")).to_have_text("connected")
        assert "ghp-browser-secret-42" not in self.page.content()
        expect(self.page.get_by_role("button", name="Your credentials for GitHub")).to_have_text("Key saved")

    def test_the_settings_panel_sends_the_users_settings_keeps_them_and_locks_for_a_fixed_agent(self) -> None:
        Agent.objects.create(slug="fixed", name="Fixed", model_names=["openai/gpt-5.1"])
        ChatModel.objects.filter(name=CHOSEN_MODEL).update(
            output_token_limit=4000, input_token_limit=400, capabilities={"thinking": True}
        )
        self.chat_open()
        self.page.locator("#model").select_option(CHOSEN_MODEL)
        panel = self.page.locator("#reply-settings")
        panel.locator("summary").click()
        panel.get_by_label("Temperature").fill("0.7")
        panel.get_by_label("Max tokens").fill("300")
        panel.get_by_label("Reasoning").select_option("low")
        expect(panel.locator("summary")).to_have_text(
            "Settings: temperature 0.7, max tokens 300, reasoning effort low"
        )
        self.screenshot_save("browser-reply-settings.png", full_page=False)
        self.message_send("first " + "word " * 150)
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        body = self.standin.requests()[0]["body"]
        assert (body["temperature"], body["max_tokens"], body["reasoning_effort"]) == (0.7, 300, "low")

        # A long conversation: the reply says older turns were left out (the model reads about 400 tokens).
        self.message_send("second " + "word " * 150)
        expect(self.reply_finished(1)).to_have_class(re.compile(r"\bcomplete\b"))
        note = self.bubbles("assistant").nth(1).locator(".context-note")
        expect(note).to_have_text(re.compile(r"^\d+ older messages? (was|were) left out"))

        self.page.reload()
        expect(self.page.locator("#connection")).to_have_text("connected")
        expect(self.page.get_by_label("Max tokens")).to_have_value("300")  # kept with the conversation
        expect(self.bubbles("assistant").nth(1).locator(".context-note")).to_be_visible()
        panel.locator("summary").click()
        self.page.get_by_label("Max tokens").fill("5000")  # beyond the model's 4000: the browser says so
        self.message_send("third")
        expect(self.page.get_by_label("Max tokens")).to_have_js_property("validity.valid", False)
        assert len(self.standin.requests()) == 2
        self.page.locator("#model").select_option("agent:fixed")
        expect(panel.get_by_label("Temperature")).to_be_disabled()
        expect(self.page.locator("#settings-note")).to_have_text("Fixed answers with its own settings.")

    def test_the_sidebar_groups_conversations_by_day(self) -> None:
        from datetime import timedelta

        from django.utils import timezone

        first = self.chat_open()
        self.message_send("today's question")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        owner_key = Conversation.objects.get(session_id=first).owner_key
        for days, title in ((3, "three days ago"), (40, "last month")):
            Conversation.objects.create(owner_key=owner_key, session_id=f"old{days}", title=title)
            Conversation.objects.filter(session_id=f"old{days}").update(
                updated_at=timezone.now() - timedelta(days=days)
            )
        self.page.reload()
        expect(self.page.locator("#connection")).to_have_text("connected")
        entries = self.page.locator("#conversation-list > li")
        expect(entries).to_have_text(
            ["Today", "today's question", "Previous 7 days", "three days ago", "Older", "last month"]
        )

    def test_the_sidebar_lists_searches_and_switches_conversations(self) -> None:
        first = self.chat_open()
        self.message_send("plan a trip to Lisbon")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        sidebar = self.page.locator("#conversation-list a")
        expect(sidebar).to_have_text(["plan a trip to Lisbon"])
        expect(sidebar.first).to_have_attribute("aria-current", "page")

        self.page.get_by_role("link", name="+ New chat").click()
        expect(self.page.locator("#connection")).to_have_text("connected")
        second = CHAT_URL_RE.search(self.page.url)[1]
        assert second != first
        self.message_send("a soup recipe")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        expect(sidebar).to_have_text(["a soup recipe", "plan a trip to Lisbon"])  # newest first

        self.page.locator("#conversation-search").fill("lisbon")
        expect(sidebar).to_have_text(["plan a trip to Lisbon"])
        sidebar.first.click()
        expect(self.page).to_have_url(re.compile(rf"/c/{first}/$"))
        expect(self.page.locator("#connection")).to_have_text("connected")
        expect(self.bubbles("user").locator(".content")).to_have_text("plan a trip to Lisbon")
        self.screenshot_save("browser-sidebar.png", full_page=False)
        export = self.page.request.get(f"{self.live_server_url}/c/{first}/export.md")
        assert "plan a trip to Lisbon" in export.text()


class AttachmentsInChromiumTests(browser.ChatBrowserTestCase):
    """Files chosen, dropped and pasted in the page, uploaded with progress, sent, and shown again."""

    def test_choose_drop_and_paste_files_send_them_and_see_thumbnails_after_a_reload(self) -> None:
        import base64
        import io

        from PIL import Image

        from .test_attachments import pdf_with_text

        out = io.BytesIO()
        Image.new("RGB", (64, 48), (220, 80, 20)).save(out, format="PNG")
        png_b64 = base64.b64encode(out.getvalue()).decode()
        session_id = self.chat_open()
        self.page.locator("#attach-input").set_input_files(
            [{"name": "report.pdf", "mimeType": "application/pdf", "buffer": pdf_with_text("Sales rose")}]
        )
        # A file dropped on the composer, and an image pasted into the message box.
        self.page.evaluate(
            """([b64]) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const drop = new DataTransfer();
                drop.items.add(new File(["print('hi')\\n"], "hello.py", { type: "text/x-python" }));
                document.getElementById("composer").dispatchEvent(
                    new DragEvent("drop", { dataTransfer: drop, bubbles: true, cancelable: true }));
                const paste = new DataTransfer();
                paste.items.add(new File([bytes], "image.png", { type: "image/png" }));
                document.getElementById("input").dispatchEvent(
                    new ClipboardEvent("paste", { clipboardData: paste, bubbles: true, cancelable: true }));
            }""",
            [png_b64],
        )
        chips = self.page.locator(".attachment-chip")
        expect(chips).to_have_count(3)
        expect(self.page.locator(".attachment-chip[data-attachment-id]")).to_have_count(3)  # all uploaded
        expect(chips.nth(2).locator("img")).to_be_visible()  # the image's thumbnail, from the server
        self.screenshot_save("browser-attachments-composer.png", full_page=False)
        self.message_send("what are these?")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        expect(chips).to_have_count(0)  # sent: the composer is empty again

        parts = self.standin.requests()[0]["body"]["messages"][-1]["content"]
        assert [part["type"] for part in parts] == ["text", "text", "text", "image_url"]
        assert "Sales rose" in parts[1]["text"]  # a model the seeded catalog does not say reads files
        assert parts[2]["text"] == "Attached file hello.py:\n\nprint('hi')\n"
        stored = base64.b64decode(parts[3]["image_url"]["url"].split(",", 1)[1])
        assert Image.open(io.BytesIO(stored)).size == (64, 48)

        self.page.reload()
        expect(self.page.locator("#connection")).to_have_text("connected")
        user = self.bubbles("user").first
        expect(user.locator(".attachment-file")).to_have_count(2)
        thumbnail = user.locator(".attachment-image img")
        expect(thumbnail).to_be_visible()
        # served to its owner (decode() waits for the load: visible comes first, its pixels after)
        assert thumbnail.evaluate("img => img.decode().then(() => img.naturalWidth)") == 64
        self.screenshot_save("browser-attachments-thread.png", full_page=False)
        assert Message.objects.get(conversation__session_id=session_id, role="user").attachment_ids

    def test_a_refused_file_says_why_on_its_chip_and_nothing_is_sent(self) -> None:
        self.chat_open()
        self.page.locator("#attach-input").set_input_files(
            [{"name": "tool.png", "mimeType": "image/png", "buffer": b"MZ\x90\x00" + bytes(range(256)) * 4}]
        )
        chip = self.page.locator(".attachment-chip")
        expect(chip).to_have_class(re.compile(r"\brefused\b"))
        expect(chip.locator(".attachment-error")).to_contain_text("Only images")
        chip.locator(".attachment-remove").click()
        expect(chip).to_have_count(0)

    def test_an_upload_in_flight_shows_its_progress_and_holds_the_message_back(self) -> None:
        held = []
        self.page.route("**/api/attachments/", lambda route: held.append(route))
        self.chat_open()
        self.page.locator("#attach-input").set_input_files(
            [{"name": "notes.md", "mimeType": "text/markdown", "buffer": b"# Notes\n" * 2000}]
        )
        chip = self.page.locator(".attachment-chip")
        expect(chip).to_have_class(re.compile(r"\buploading\b"))
        expect(chip.locator("progress")).to_be_visible()
        self.page.locator("#input").fill("read my notes")
        self.page.locator("#input").press("Enter")  # waits: the upload is not up yet
        self.page.wait_for_timeout(200)
        assert self.standin.requests() == []
        expect(self.page.locator("#input")).to_have_value("read my notes")
        held[0].continue_()
        expect(chip).to_have_attribute("data-attachment-id", re.compile(r"^[0-9a-f-]{36}$"))
        expect(chip.locator("progress")).to_be_hidden()
        self.page.locator("#input").press("Enter")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        parts = self.standin.requests()[0]["body"]["messages"][-1]["content"]
        assert parts[1]["text"].startswith("Attached file notes.md:\n\n# Notes\n")

    def test_attachments_fit_a_phone(self) -> None:
        import io

        from PIL import Image

        out = io.BytesIO()
        Image.new("RGB", (800, 600), (30, 90, 200)).save(out, format="JPEG")
        context = self.browser.new_context(viewport={"width": 390, "height": 844})
        self.addCleanup(context.close)
        self.page = context.new_page()
        self.chat_open()
        files = [
            {"name": "holiday-photo-from-the-beach.jpg", "mimeType": "image/jpeg", "buffer": out.getvalue()},
            {"name": "a-rather-long-file-name-for-a-phone.txt", "mimeType": "text/plain", "buffer": b"hi"},
        ]
        self.page.locator("#attach-input").set_input_files(files)
        expect(self.page.locator(".attachment-chip[data-attachment-id]")).to_have_count(2)
        self.message_send("on a phone")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        expect(self.bubbles("user").first.locator(".attachment-image img")).to_be_visible()
        sideways = self.page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")
        assert not sideways
        box = self.bubbles("user").first.locator(".attachment-image img").bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= 390
        self.screenshot_save("browser-attachments-mobile.png", full_page=False)


class FeedbackInChromiumTests(browser.ChatBrowserTestCase):
    """Thumbs on a reply, with a comment, kept across a reload and taken back."""

    def test_thumbs_down_with_a_comment_is_kept_shown_in_another_tab_and_after_a_reload(self) -> None:
        from conversations.models import Feedback

        session_id = self.chat_open()
        self.message_send("rate me")
        reply = self.reply_finished(0)
        other_tab = self.page.context.new_page()
        other_tab.goto(f"{self.live_server_url}/c/{session_id}/")
        expect(other_tab.locator("#connection")).to_have_text("connected")
        reply.get_by_role("button", name="Bad reply").click()
        self.page.get_by_label("Feedback comment").fill("too vague")
        self.page.get_by_label("Feedback comment").press("Enter")
        expect(self.page.locator(".feedback-form")).to_have_count(0)
        expect(reply.get_by_role("button", name="Bad reply")).to_have_attribute("aria-pressed", "true")
        # Pressed reads as pressed at a glance: filled in the text's colour, not a faint pill.
        pressed, unpressed = (
            reply.get_by_role("button", name=name).evaluate("(b) => getComputedStyle(b).backgroundColor")
            for name in ("Bad reply", "Good reply")
        )
        assert pressed == self.page.evaluate("() => getComputedStyle(document.body).color"), (
            pressed,
            unpressed,
        )
        # The other tab hears it live, from the server's feedback frame.
        elsewhere = other_tab.locator("#chat .message.assistant").first.get_by_role(
            "button", name="Bad reply"
        )
        expect(elsewhere).to_have_attribute("aria-pressed", "true")
        # The comment goes in a frame of its own, right after the thumb's.
        for _ in range(50):
            feedback = Feedback.objects.filter(comment="too vague").first()
            if feedback is not None:
                break
            other_tab.wait_for_timeout(100)
        assert feedback is not None
        assert feedback.rating == Feedback.Rating.DOWN
        self.page.reload()
        expect(self.page.locator("#connection")).to_have_text("connected")
        again = self.bubbles("assistant").first
        expect(again.get_by_role("button", name="Bad reply")).to_have_attribute("aria-pressed", "true")
        again.get_by_role("button", name="Bad reply").click()  # pressed again: taken back
        expect(again.get_by_role("button", name="Bad reply")).to_have_attribute("aria-pressed", "false")
        expect(elsewhere).to_have_attribute("aria-pressed", "false")
        assert not Feedback.objects.exists()
        other_tab.close()

    def test_feedback_given_on_the_page_is_listed_and_counted_in_the_admin(self) -> None:
        from django.contrib.auth import get_user_model

        from conversations.models import Feedback

        self.chat_open()
        self.message_send("rate me too")
        reply = self.reply_finished(0)
        reply.get_by_role("button", name="Good reply").click()
        self.page.get_by_label("Feedback comment").fill("spot on")
        self.page.get_by_label("Feedback comment").press("Enter")
        for _ in range(50):  # the comment's frame is stored a moment after the page sent it
            if Feedback.objects.filter(comment="spot on").exists():
                break
            self.page.wait_for_timeout(100)
        get_user_model().objects.create_superuser("ops", password="pw-for-tests-only")
        admin = self.browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        self.addCleanup(admin.context.close)
        admin.goto(f"{self.live_server_url}/admin/login/?next=/admin/conversations/feedback/")
        admin.get_by_label("Username").fill("ops")
        admin.get_by_label("Password").fill("pw-for-tests-only")
        admin.get_by_role("button", name="Log in").click()
        expect(admin.locator("#result_list")).to_contain_text("spot on")
        expect(admin.locator("#feedback-by-model")).to_contain_text("openai/gpt-5.1")
        admin.screenshot(path=str(browser.ARTIFACTS / "admin-feedback.png"), full_page=True)


class VersionSwitchInChromiumTests(browser.ChatBrowserTestCase):
    """Switching versions keeps the reader's place, with arrows of a real size."""

    def test_switching_to_a_longer_version_keeps_the_switched_message_in_place(self) -> None:
        session_id = self.chat_open()
        self.message_send("first question")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        self.bubbles("assistant").first.locator("[data-action=regenerate]").click()
        expect(self.bubbles("assistant").first.locator(".branch-pos")).to_have_text("2/2")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        # The first version gets a long follow-up: switching to it makes the thread much longer below.
        conversation = Conversation.objects.get(session_id=session_id)
        first_reply, second_reply = Message.objects.filter(
            conversation=conversation, role="assistant"
        ).order_by("id")
        question = Message.objects.create(
            conversation=conversation, parent=first_reply, role="user", content="more?"
        )
        Message.objects.create(
            conversation=conversation,
            parent=question,
            role="assistant",
            content="\n\n".join(f"Paragraph {n} of a long answer." for n in range(60)),
            model="openai/gpt-5.1",
            status="complete",
        )
        self.page.reload()
        expect(self.page.locator("#connection")).to_have_text("connected")
        shown = self.bubbles("assistant").first
        expect(shown.locator(".branch-pos")).to_have_text("2/2")
        arrow = shown.locator("[data-action=branch-prev]").bounding_box()
        assert arrow is not None
        assert arrow["width"] >= 32
        assert arrow["height"] >= 32
        before = shown.bounding_box()["y"]
        shown.locator("[data-action=branch-prev]").click()
        expect(self.bubbles("assistant")).to_have_count(2)  # the longer branch is shown
        switched = self.page.locator(f'[data-message-id="{first_reply.pk}"]')
        expect(switched.locator(".branch-pos")).to_have_text("1/2")
        assert abs(switched.bounding_box()["y"] - before) <= 2  # in place, not a jump to the bottom


# Set before the class's live server forks: a per-test override would not reach it.
@override_settings(CHAT_ATTACHMENT_MAX_BYTES=2048)
class AttachmentLimitInChromiumTests(browser.ChatBrowserTestCase):
    def test_a_file_over_the_limit_is_refused_at_once_in_its_own_terms_and_keeps_its_name(self) -> None:
        self.chat_open()
        uploads = []
        self.page.on("request", lambda req: uploads.append(req.url) if req.method == "POST" else None)
        self.page.locator("#attach-input").set_input_files(
            [{"name": "quarterly-figures.txt", "mimeType": "text/plain", "buffer": b"x" * 3072}]
        )
        chip = self.page.locator(".attachment-chip")
        expect(chip).to_have_class(re.compile(r"\brefused\b"))
        expect(chip.locator(".attachment-error")).to_have_text(
            "quarterly-figures.txt is 3 KB; the limit is 2 KB."
        )
        name = chip.locator(".attachment-name")
        expect(name).to_have_text("quarterly-figures.txt")
        assert name.evaluate("(n) => n.scrollWidth <= n.clientWidth")  # shown whole, not cut short
        # Its × beside its name, the reason on the line under both (not the × alone on a third line).
        remove = chip.get_by_role("button", name="Remove quarterly-figures.txt").bounding_box()
        named, reason = name.bounding_box(), chip.locator(".attachment-error").bounding_box()
        assert remove["y"] < named["y"] + named["height"]  # the two overlap: one line
        assert named["y"] < remove["y"] + remove["height"]
        assert reason["y"] >= max(named["y"] + named["height"], remove["y"] + remove["height"]) - 1
        assert uploads == []  # refused before a byte was sent
