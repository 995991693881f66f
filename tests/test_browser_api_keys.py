""" "API keys" in chromium: a signed-in user makes a key with the keyboard, copies it (shown once), sees it
listed and revokes it, and OpenAI's client on the same server takes the key, then refuses it; a visitor
has no panel."""

from __future__ import annotations

import json
from datetime import timedelta

import openai
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect

from conversations.models import ApiKey

from . import browser
from .test_browser_accessibility import DESKTOP, PHONE, severe_violations

CLIPBOARD = ["clipboard-read", "clipboard-write"]


class ApiKeysInChromiumTests(browser.ChatBrowserTestCase):
    def test_a_user_makes_copies_uses_and_revokes_a_key(self) -> None:
        self.page.context.grant_permissions(CLIPBOARD, origin=self.live_server_url)
        self.signed_in_chat_open()
        page = self.page
        dialog = page.locator("#api-keys-dialog")
        page.locator("#api-keys-open").focus()
        page.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        expect(page.locator("#api-key-name")).to_be_focused()
        expect(page.locator("#api-keys-status")).to_have_text("No keys yet.")
        expect(page.locator("#api-keys-base")).to_have_text(f"{self.live_server_url}/v1")

        page.keyboard.type("notebook script")
        page.keyboard.press("Tab")
        expect(page.locator("#api-key-expiry")).to_be_focused()
        page.locator("#api-key-expiry").select_option("90")
        page.locator("#api-key-name").press("Enter")  # Enter in the name makes the key, as in any form

        expect(page.locator("#api-key-copy")).to_be_focused()
        key = page.locator("#api-key-value").input_value()
        row = ApiKey.objects.get()
        assert key.startswith(row.prefix)
        assert (row.name, row.user.username) == ("notebook script", "nora")
        page.keyboard.press("Enter")  # Copy
        expect(page.locator("#api-keys-status")).to_have_text("Key copied.")
        assert page.evaluate("() => navigator.clipboard.readText()") == key
        item = page.locator("#api-key-list li")
        expect(item).to_have_count(1)
        expect(item).to_contain_text("notebook script")
        expect(item).to_contain_text(f"{row.prefix}…")
        expect(item).to_contain_text("never used")
        self.screenshot_save("api-keys.png", full_page=False)

        api = openai.OpenAI(api_key=key, base_url=f"{self.live_server_url}/v1", max_retries=0)
        assert "openai/gpt-5.1" in [model.id for model in api.models.list()]

        # Closing the dialog forgets the key: it is never shown again.
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(page.locator("#api-keys-open")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#api-key-new")).to_be_hidden()
        expect(item).to_contain_text("last used")
        assert key not in page.content()

        page.get_by_role("button", name="Revoke notebook script").click()
        expect(item).to_have_count(0)
        expect(page.locator("#api-keys-status")).to_have_text("notebook script revoked: it no longer works.")
        expect(page.locator("#api-key-name")).to_be_focused()
        with pytest.raises(openai.AuthenticationError):
            api.models.list()

    def test_the_panel_is_accessible_in_light_and_dark_and_on_a_phone(self) -> None:
        self.signed_in_chat_open("ada")
        ApiKey.objects.create(
            user=get_user_model().objects.get(username="ada"),
            name="expired one",
            prefix="dck_AAAAAAAA",
            key_hash="0" * 64,
            expires_at=timezone.now() - timedelta(days=1),
            scope=["openai/gpt-5.1"],
        )
        self.page.locator("#api-keys-open").click()
        expect(self.page.get_by_role("button", name="Revoke expired one")).to_be_visible()
        listed = self.page.locator("#api-key-list")
        expect(listed).to_contain_text("expired · never used · only openai/gpt-5.1")
        self.page.get_by_role("button", name="Create key").click()
        expect(self.page.locator("#api-key-new")).to_be_visible()
        for name, scheme, viewport in [
            ("api-keys", "light", DESKTOP),
            ("api-keys-dark", "dark", DESKTOP),
            ("api-keys-mobile", "light", PHONE),
        ]:
            self.page.emulate_media(color_scheme=scheme)
            self.page.set_viewport_size(viewport)
            self.page.screenshot(path=str(browser.ARTIFACTS / f"a11y-{name}.png"), animations="disabled")
            violations = severe_violations(self.page)
            assert not violations, f"{name}: {json.dumps(violations, indent=1)}"

    def test_a_visitor_has_no_api_keys_panel(self) -> None:
        self.chat_open()
        expect(self.page.locator("#api-keys-open")).to_have_count(0)
        expect(self.page.locator("#api-keys-dialog")).to_have_count(0)
