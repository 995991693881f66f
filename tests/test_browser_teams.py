"""Who may use what, in chromium: the picker offers a signed-in user the agents and models of their groups
and those of no group, and nothing of a group they are not in."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from conversations.models import Agent, ChatModel

from . import browser
from .browser import expect

OPUS = "anthropic/claude-opus-4-5-20251101"


class PickerOfGroupsInChromiumTests(browser.ChatBrowserTestCase):
    def test_the_picker_shows_only_what_the_users_groups_permit(self) -> None:
        legal = Group.objects.create(name="legal")
        Agent.objects.create(slug="counsel", name="Counsel", model_names=["openai/gpt-5.1"]).groups.add(legal)
        Agent.objects.create(slug="helper", name="Helper", model_names=["openai/gpt-5.1"])
        ChatModel.objects.get(name=OPUS).groups.add(legal)
        self.signed_in_chat_open()
        picker = self.page.locator("#model")

        expect(picker.locator("option[value^='agent:']")).to_have_text(["Helper"])
        expect(picker.locator(f"option[value='{OPUS}']")).to_have_count(0)

        legal.user_set.add(get_user_model().objects.get(username="nora"))
        self.page.reload()
        expect(self.page.locator("#connection")).to_have_text("connected")
        expect(picker.locator("option[value^='agent:']")).to_have_text(["Counsel", "Helper"])
        expect(picker.locator(f"option[value='{OPUS}']")).to_have_count(1)
