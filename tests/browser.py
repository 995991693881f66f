"""What every browser test shares: a live Daphne on the test database and the stand-in, Debian chromium
driven by Playwright, and helpers that speak the chat page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pytest
from asgiref.sync import SyncToAsync
from channels.testing import ChannelsLiveServerTestCase
from daphne.testing import DaphneProcess
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from playwright.sync_api import Browser, Locator, Page, Playwright, expect, sync_playwright

from .processes import ROOT
from .seed_models import chat_models_seed
from .standin_control import StandIn

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
CHOSEN_MODEL = "anthropic/claude-opus-4-5-20251101"
WAIT_MS = 10_000
CHAT_URL_RE = re.compile(r"/c/([A-Za-z0-9_-]{1,64})/$")
TOKENS_RE = re.compile(r"^\d+ tokens$")


def words(text: str) -> str:
    """Text with its whitespace collapsed: a reply rendered as Markdown keeps its words, not its spacing."""
    return " ".join(text.split())


def live_server_settings_apply(database_name: str, dedalus_base_url: str) -> None:
    """In the Daphne child, before it serves: use the parent's test database and stand-in.

    Also give asgiref a sync thread of its own: a fork copies the parent's executor but not its
    thread, so after an earlier async test had started that thread, every thread-sensitive call
    (the handshake's session and user lookups) would wait forever.
    """
    settings.DATABASES["default"]["NAME"] = database_name
    settings.DEDALUS_BASE_URL = settings.DEDALUS_AS_URL = dedalus_base_url
    SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)


class LiveServerProcess(DaphneProcess):
    """Channels' live Daphne, pointed at exactly the database and stand-in this test process uses.

    Channels' own setup derives the test database name again from NAME, which pytest-django has
    already renamed to `test_chat`, so the child would open `test_test_chat` (django/channels#2176).
    """

    def __init__(
        self, host: str, get_application: Any, kwargs: Any = None, setup: Any = None, **rest: Any
    ) -> None:
        if not settings.DEDALUS_BASE_URL:
            raise ImproperlyConfigured("The stand-in must run (DEDALUS_BASE_URL set) before the live server.")
        setup = partial(
            live_server_settings_apply, settings.DATABASES["default"]["NAME"], settings.DEDALUS_BASE_URL
        )
        super().__init__(host, get_application, kwargs, setup=setup, **rest)


@pytest.mark.usefixtures("standin_server")
class ChatBrowserTestCase(ChannelsLiveServerTestCase):
    """A live server, one chromium for the class, and a fresh browser context per test."""

    host = "127.0.0.1"
    ProtocolServerProcess = LiveServerProcess

    playwright: ClassVar[Playwright]
    browser: ClassVar[Browser]
    standin: StandIn
    page: Page
    dialogs: list[str]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()  # forks Daphne first, so the child never inherits the browser's pipes
        # The sync Playwright API marks its idle event loop as running on this thread after every call,
        # so Django would refuse this thread's plain ORM calls (fixtures, flushes, the tests' reads). They
        # are sync code, so allow them; set after the fork, the live server never sees it.
        environment = pytest.MonkeyPatch()
        cls.addClassCleanup(environment.undo)
        environment.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        cls.playwright = sync_playwright().start()
        cls.addClassCleanup(cls.playwright.stop)
        cls.browser = cls.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        cls.addClassCleanup(cls.browser.close)
        expect.set_options(timeout=WAIT_MS)

    @pytest.fixture(autouse=True)
    def chat_page_ready(self, standin: StandIn) -> Iterator[None]:
        """A fresh browser context per test, with a recorder for any dialog the page opens.

        Also puts back the seeded models that the flush after each test removes (the shared
        `chat_models_seeded` fixture cannot tell a Django test class needs the database).
        """
        chat_models_seed()
        self.standin = standin
        context = self.browser.new_context(viewport={"width": 1100, "height": 800})
        context.set_default_timeout(WAIT_MS)
        self.page = context.new_page()
        self.dialogs = []
        self.page.on("dialog", self.dialog_record)
        yield
        context.close()

    def dialog_record(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    # --- helpers ---

    def chat_open(self) -> str:
        """Open `/`, follow its redirect to a new conversation, wait for the socket; return the session id."""
        self.page.goto(f"{self.live_server_url}/")
        expect(self.page).to_have_url(CHAT_URL_RE)
        expect(self.page.locator("#connection")).to_have_text("connected")
        match = CHAT_URL_RE.search(self.page.url)
        assert match is not None
        return match[1]

    def signed_in_chat_open(self, username: str = "nora") -> None:
        """Make the user `username`, sign in on the page, and wait on the new chat it opens."""
        get_user_model().objects.create_user(username, password="pw-for-tests-only")
        self.page.goto(f"{self.live_server_url}/accounts/login/?next=/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill("pw-for-tests-only")
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page).to_have_url(CHAT_URL_RE)
        expect(self.page.locator("#connection")).to_have_text("connected")

    def message_send(self, text: str) -> None:
        expect(self.page.locator("#send")).to_be_enabled()
        self.page.locator("#input").fill(text)
        self.page.locator("#input").press("Enter")

    def bubbles(self, role: str) -> Locator:
        return self.page.locator(f"#chat .message.{role}")

    def reply_finished(self, index: int) -> Locator:
        """Wait until the `index`-th assistant bubble has ended (complete or error); return it."""
        bubble = self.bubbles("assistant").nth(index)
        expect(bubble).to_have_class(re.compile(r"\b(complete|error|interrupted)\b"))
        expect(bubble).not_to_have_class(re.compile(r"\bstreaming\b"))
        expect(self.page.locator("#stop")).to_be_hidden()
        return bubble

    def stream_samples(self, count: int) -> list[int]:
        """Lengths of the streaming reply's text, each sampled while it streams and longer than the last."""
        growing = """([previous]) => {
            const bubble = document.querySelector('#messages .message.assistant.streaming');
            if (!bubble || document.getElementById('stop').hidden) return false;
            const length = bubble.querySelector('.content').textContent.length;
            return length > previous ? length : false;
        }"""
        samples = [0]
        for _ in range(count):
            samples.append(self.page.wait_for_function(growing, arg=[samples[-1]]).json_value())
        return samples[1:]

    def share_link_create(self, session_id: str) -> str:
        """Share one of this browser's conversations through the API, as the share dialog does; return
        the link."""
        csrf = next(c["value"] for c in self.page.context.cookies() if c["name"] == "csrftoken")
        answer = self.page.request.post(
            f"{self.live_server_url}/c/{session_id}/share",
            data="{}",
            headers={
                "X-CSRFToken": csrf,
                "Content-Type": "application/json",
                "Referer": self.live_server_url,
            },
        )
        assert answer.ok, answer.status
        return answer.json()["url"]

    def screenshot_save(self, name: str, *, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path
