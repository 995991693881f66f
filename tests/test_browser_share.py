"""Share links and each chat's menu in chromium: a share made from the menu, read signed out in a fresh
browser, made login-only, revoked, continued; rename, pin and delete from a sidebar entry's menu, by
keyboard too; "Show more" kept after a reply; no menu on an empty new chat."""

from __future__ import annotations

import re
import time

from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from conversations.models import Attachment, Conversation, Message

from . import browser
from .browser import CHAT_URL_RE, WAIT_MS

SHARED_URL_RE = re.compile(r"/s/([A-Za-z0-9_-]{22})/$")


class ShareAndChatMenuTests(browser.ChatBrowserTestCase):
    accept_dialogs = False

    def dialog_record(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        if self.accept_dialogs:
            dialog.accept()
        else:
            dialog.dismiss()

    def fresh_page(self) -> Page:
        """A page in a browser context of its own: no cookie of the owner's."""
        context = self.browser.new_context(viewport={"width": 1100, "height": 800})
        context.set_default_timeout(WAIT_MS)
        self.addCleanup(context.close)
        return context.new_page()

    def menu_choose(self, button_selector: str, item: str) -> None:
        self.page.locator(button_selector).click()
        self.page.get_by_role("menuitem", name=item, exact=True).click()

    def signed_in_with(self, *titles: str) -> str:
        """Sign in a new user whose conversations have these titles (the first the newest); return its key."""
        user = get_user_model().objects.create_user("sam", password="pw-for-tests-only")
        owner_key = f"u:{user.pk}"
        for position, title in enumerate(reversed(titles)):
            conversation = Conversation.objects.create(
                owner_key=owner_key, user=user, session_id=f"chat-{position:03d}", title=title
            )
            conversation.current_message = Message.objects.create(
                conversation=conversation, role="user", content=f"about {title}"
            )
            conversation.save(update_fields=["current_message"])  # saved in order: the last is the newest
        self.page.goto(f"{self.live_server_url}/accounts/login/")
        self.page.get_by_label("Username").fill("sam")
        self.page.get_by_label("Password").fill("pw-for-tests-only")
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page).to_have_url(CHAT_URL_RE)
        expect(self.page.locator("#connection")).to_have_text("connected")
        return owner_key

    def entries(self):
        return self.page.locator("#conversation-list > li")

    def test_a_list_answer_asked_for_before_a_link_was_made_does_not_hide_the_link(self) -> None:
        """The list says which chats have a link (the dialog then asks for none it knows is missing); an
        answer on its way while the dialog made one must not undo what the dialog knows."""
        self.chat_open()
        self.message_send("something to share")
        self.reply_finished(0)
        held, releasing = [], []

        def hold(route) -> None:
            if releasing:
                route.continue_()
            else:
                held.append((route, route.fetch()))  # answered now, before the link exists; delivered later

        self.page.route("**/api/conversations/?*", hold)
        self.message_send("and one more thing")
        self.reply_finished(1)  # its end asks for the list again
        deadline = time.monotonic() + 10
        while not held and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)
        assert held, "the list was not asked for again"
        self.menu_choose("#chat-menu-button", "Share…")
        self.page.get_by_role("button", name="Create link").click()
        expect(self.page.locator("#share-status")).to_have_text("Link ready.")
        url = self.page.locator("#share-link").input_value()
        self.page.get_by_role("button", name="Close").click()
        releasing.append(True)
        for route, answer in held:
            route.fulfill(response=answer)  # says the chat has no link
        self.page.wait_for_timeout(300)
        self.menu_choose("#chat-menu-button", "Share…")
        expect(self.page.locator("#share-link")).to_be_visible()
        expect(self.page.locator("#share-link")).to_have_value(url)
        self.page.get_by_label("Signed-in users only").check()
        expect(self.page.locator("#share-status")).to_have_text("Link ready, for signed-in users only.")

    def test_share_from_the_menu_read_signed_out_login_only_revoke_and_continue(self) -> None:
        session_id = self.chat_open()
        self.message_send("plan a trip to Lisbon with `code` and **bold**")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        # The title bar took the title the server wrote (the start frame's), Markdown markers gone.
        expect(self.page.locator("#chat-title")).to_have_text("plan a trip to Lisbon with code and bold")
        original = Conversation.objects.get(session_id=session_id)

        # The list knows the chat has no link: the dialog asks for none (which would be a 404 in the console).
        expect(self.page.locator("#conversation-list")).to_contain_text("plan a trip to Lisbon")
        asked = []
        self.page.on("request", lambda req: asked.append(req.method) if req.url.endswith("/share") else None)
        self.menu_choose("#chat-menu-button", "Share…")
        dialog = self.page.locator("#share-dialog")
        expect(dialog).to_be_visible()
        expect(self.page.locator("#share-stop")).to_be_hidden()
        self.page.get_by_role("button", name="Create link").click()
        link = self.page.locator("#share-link")
        expect(link).to_have_value(re.compile(SHARED_URL_RE.pattern))
        assert asked == ["POST"]
        expect(self.page.locator("#share-stop")).to_be_visible()
        self.screenshot_save("share-dialog.png", full_page=False)
        url = link.input_value()

        # Read in a fresh, signed-out browser: the same bubbles, no composer, no sidebar, no owner.
        viewer = self.fresh_page()
        viewer.goto(url)
        expect(viewer.locator("#messages .message.user .content")).to_have_text(
            "plan a trip to Lisbon with `code` and **bold**"
        )
        reply = viewer.locator("#messages .message.assistant")
        expect(reply.locator(".content")).not_to_be_empty()
        expect(reply.locator(".model")).to_have_text("GPT-5.1")  # as the chat names it: its label
        expect(reply.locator("[data-action=copy-message]")).to_be_visible()
        expect(reply.locator("[data-action=regenerate], [data-action=feedback-up]")).to_have_count(0)
        expect(viewer.locator("#composer, #sidebar")).to_have_count(0)
        # The conversation's title, cleaned of its Markdown markers.
        expect(viewer.locator("#chat-title")).to_have_text("plan a trip to Lisbon with code and bold")
        assert session_id not in viewer.content()
        viewer.screenshot(
            path=str(browser.ARTIFACTS / "share-page.png"), full_page=True, animations="disabled"
        )

        # Messages sent after sharing are not in the snapshot.
        self.page.get_by_role("button", name="Close").click()
        expect(dialog).to_be_hidden()
        self.message_send("a second question")
        expect(self.reply_finished(1)).to_have_class(re.compile(r"\bcomplete\b"))
        viewer.reload()
        expect(viewer.locator("#messages .message")).to_have_count(2)

        # Login-only: a signed-out viewer is sent to the login page.
        self.menu_choose("#chat-menu-button", "Share…")
        expect(self.page.locator("#share-link")).to_have_value(url)
        self.page.get_by_label("Signed-in users only").check()
        expect(self.page.locator("#share-status")).to_have_text("Link ready, for signed-in users only.")
        expect(self.page.locator("#share-link")).to_have_value(url)  # the same link
        anonymous = self.fresh_page()
        anonymous.goto(url)
        expect(anonymous).to_have_url(re.compile(r"/accounts/login/\?next=/s/"))
        self.page.get_by_label("Signed-in users only").uncheck()
        expect(self.page.locator("#share-status")).to_have_text("Link ready.")

        # Continue: a copy of the viewer's own opens, with the snapshot (now 4 messages: shared again).
        viewer.reload()
        expect(viewer.locator("#messages .message")).to_have_count(4)
        viewer.get_by_role("button", name="Continue this conversation").click()
        expect(viewer).to_have_url(CHAT_URL_RE)
        expect(viewer.locator("#connection")).to_have_text("connected")
        expect(viewer.locator("#messages .message.user .content").first).to_have_text(
            "plan a trip to Lisbon with `code` and **bold**"
        )
        expect(viewer.locator("#messages .message")).to_have_count(4)
        copy_id = CHAT_URL_RE.search(viewer.url)[1]
        copy = Conversation.objects.get(session_id=copy_id)
        assert copy.owner_key != original.owner_key
        assert Message.objects.filter(conversation=original).count() == 4
        viewer.screenshot(path=str(browser.ARTIFACTS / "share-continued.png"), animations="disabled")

        # Stop sharing: the link answers 404.
        self.page.get_by_role("button", name="Stop sharing").click()
        expect(self.page.locator("#share-status")).to_have_text("Sharing stopped: the link no longer works.")
        expect(self.page.locator("#share-link-row")).to_be_hidden()
        assert viewer.goto(url).status == 404

    def test_the_sidebar_menu_renames_pins_and_deletes_by_mouse_and_keyboard(self) -> None:
        self.signed_in_with("Lisbon trip", "Soup", "Taxes")
        expect(self.entries()).to_have_text(["Today", "Lisbon trip", "Soup", "Taxes"])

        # By keyboard: the entry's button opens the menu on its first item; arrows move; Escape closes.
        soup = self.entries().filter(has_text="Soup")
        button = soup.get_by_role("button", name="Actions for Soup")
        expect(button).to_have_attribute("aria-haspopup", "menu")
        button.focus()
        self.page.keyboard.press("Enter")
        expect(button).to_have_attribute("aria-expanded", "true")
        menu = self.page.get_by_role("menu")
        expect(menu.get_by_role("menuitem")).to_have_text(
            ["Rename", "Pin", "Share…", "Export Markdown", "Export JSON", "Delete"]
        )
        expect(menu.get_by_role("menuitem", name="Rename")).to_be_focused()
        self.page.keyboard.press("ArrowDown")
        expect(menu.get_by_role("menuitem", name="Pin")).to_be_focused()
        self.screenshot_save("sidebar-menu.png", full_page=False)
        self.page.keyboard.press("Escape")
        expect(menu).to_have_count(0)
        expect(button).to_have_attribute("aria-expanded", "false")
        expect(button).to_be_focused()

        # Pin: it moves to a "Pinned" group at the top, and stays there after a reload.
        button.press("Enter")
        self.page.keyboard.press("ArrowDown")
        self.page.keyboard.press("Enter")
        expect(self.entries()).to_have_text(["Pinned", "Soup", "Today", "Lisbon trip", "Taxes"])
        self.page.reload()
        expect(self.entries()).to_have_text(["Pinned", "Soup", "Today", "Lisbon trip", "Taxes"])
        assert Conversation.objects.get(title="Soup").pinned_at is not None
        self.menu_choose('#conversation-list [aria-label="Actions for Soup"]', "Unpin")
        expect(self.entries()).to_have_text(["Today", "Lisbon trip", "Soup", "Taxes"])

        # Rename in the entry itself.
        self.menu_choose('#conversation-list [aria-label="Actions for Taxes"]', "Rename")
        field = self.page.locator("#conversation-list input")
        expect(field).to_be_focused()
        field.fill("Tax return 2026")
        field.press("Enter")
        expect(self.entries()).to_have_text(["Today", "Lisbon trip", "Soup", "Tax return 2026"])
        assert Conversation.objects.filter(title="Tax return 2026").exists()

        # Delete another chat than the open one, after a confirm: the open chat stays open.
        opened = self.page.url
        self.accept_dialogs = True
        self.menu_choose('#conversation-list [aria-label="Actions for Lisbon trip"]', "Delete")
        assert self.dialogs == ["Delete this chat and all its messages?"]
        expect(self.entries()).to_have_text(["Today", "Soup", "Tax return 2026"])
        assert not Conversation.objects.filter(title="Lisbon trip").exists()
        assert self.page.url == opened

    def test_show_more_keeps_what_it_loaded_after_a_reply(self) -> None:
        self.signed_in_with(*(f"chat {n}" for n in range(34)))
        links = self.page.locator("#conversation-list a")
        expect(links).to_have_count(30)
        self.page.get_by_role("button", name="Show more").click()
        expect(links).to_have_count(34)
        expect(self.page.locator("#conversations-more")).to_be_hidden()
        self.message_send("a fresh question")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        expect(links.first).to_have_text("a fresh question")
        expect(links).to_have_count(35)  # not cut back to the first 30
        expect(links.last).to_have_text("chat 33")
        expect(self.page.locator("#conversations-more")).to_be_hidden()

    def test_an_empty_new_chat_offers_no_menu_until_its_first_message(self) -> None:
        self.chat_open()
        menu_button = self.page.locator("#chat-menu-button")
        expect(menu_button).to_be_hidden()
        expect(self.page.get_by_role("button", name="Rename")).to_have_count(0)
        self.message_send("hello there")
        expect(menu_button).to_be_visible()
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        self.page.reload()
        expect(self.page.locator("#connection")).to_have_text("connected")
        expect(menu_button).to_be_visible()
        self.page.get_by_role("link", name="+ New chat").click()
        expect(self.page.locator("#connection")).to_have_text("connected")
        expect(menu_button).to_be_hidden()

    def test_the_title_bars_menu_opens_with_one_click_after_a_rename(self) -> None:
        self.chat_open()
        self.message_send("hello there")
        expect(self.reply_finished(0)).to_have_class(re.compile(r"\bcomplete\b"))
        self.menu_choose("#chat-menu-button", "Rename")
        field = self.page.locator("#chat-title input")
        expect(field).to_be_focused()
        field.fill("Renamed by hand")
        field.press("Enter")
        expect(self.page.locator("#chat-title")).to_have_text("Renamed by hand")
        expect(self.page.locator("#chat-menu-button")).to_be_focused()
        expect(self.page.get_by_role("menu")).to_have_count(0)  # the Enter that saved opened nothing
        self.page.locator("#chat-menu-button").click()  # once
        expect(self.page.get_by_role("menu")).to_be_visible()
        expect(self.page.locator("#chat-menu-button")).to_have_attribute("aria-expanded", "true")

    def test_a_shared_page_names_attachments_without_links_to_the_owners_files(self) -> None:
        owner_key = self.signed_in_with("With files")
        conversation = Conversation.objects.get(title="With files")
        attachment = Attachment.objects.create(
            owner_key=owner_key,
            conversation=conversation,
            name="notes.txt",
            kind=Attachment.Kind.TEXT,
            content_type="text/plain; charset=utf-8",
            size=2048,
            file="files/not-served",
        )
        message = conversation.current_message
        message.attachment_ids = [str(attachment.pk)]
        message.save(update_fields=["attachment_ids"])
        url = self.share_link_create(conversation.session_id)
        viewer = self.fresh_page()
        viewer.goto(url)
        named = viewer.locator("#messages .message.user .message-attachments li")
        expect(named).to_have_text("notes.txt2 KB")
        expect(named.locator("a, img")).to_have_count(0)
        assert str(attachment.pk) not in viewer.content()
        viewer.screenshot(path=str(browser.ARTIFACTS / "share-attachments.png"), animations="disabled")
        viewer.set_viewport_size({"width": 390, "height": 760})  # a phone: nothing overflows sideways
        assert viewer.evaluate("() => document.documentElement.scrollWidth") <= 390
        expect(viewer.get_by_role("button", name="Continue this conversation")).to_be_in_viewport()
        viewer.screenshot(path=str(browser.ARTIFACTS / "share-mobile.png"), animations="disabled")
