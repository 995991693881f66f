"""The page's scripts are ES modules, preloaded from their own imports, with the server's rules given in
the markup rather than copied into them."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from conversations.validators import MCP_SLUG_RE
from conversations.web.module_scripts import module_imports

from .processes import ROOT

STATIC = ROOT / "conversations" / "static"
SCRIPTS = sorted((STATIC / "conversations").rglob("*.js"))
# The page modules each entry loads; theme.js is the one classic script (it must run before the first paint).
ENTRIES = {
    "conversations/chat/main.js",
    "conversations/share.js",
    "conversations/usage-charts.js",
    "conversations/agent-form.js",
}
CLASSIC = {"conversations/theme.js"}


def static_path(script: Path) -> str:
    return script.relative_to(STATIC).as_posix()


def test_every_script_but_the_theme_is_a_module_reached_from_an_entry_and_none_publishes_a_global() -> None:
    reached = set(ENTRIES)
    for entry in ENTRIES:
        reached.update(module_imports(entry))
    assert {static_path(script) for script in SCRIPTS} == reached | CLASSIC
    for script in SCRIPTS:
        assert not re.search(r"^\s*window\.\w+\s*=", script.read_text(), re.M), static_path(script)


def test_the_imports_are_read_over_several_lines_and_each_module_is_listed_once() -> None:
    imports = module_imports("conversations/chat/main.js")
    assert len(imports) == len(set(imports))
    # thread.js imports composer.js over several lines; sidebar.js reaches the chat's menu and share dialog.
    assert {
        "conversations/chat/composer.js",
        "conversations/chat/chat-menu.js",
        "conversations/chat/share-dialog.js",
        "conversations/messages.js",
        "conversations/markdown.js",
    } <= set(imports)


@pytest.mark.django_db
def test_the_chat_page_preloads_each_module_its_entry_imports_and_gives_the_mcp_slug_rule(client) -> None:
    page = client.get("/c/page-modules/").content.decode()
    preloaded = re.findall(r'<link rel="modulepreload" href="/static/([^"]+)">', page)
    assert preloaded == module_imports("conversations/chat/main.js")
    own_scripts = re.findall(r'<script( type="module")? src="/static/(conversations/[^"]+)"', page)
    assert own_scripts == [("", "conversations/theme.js"), (' type="module"', "conversations/chat/main.js")]
    pattern = re.search(r'<input type="text" id="mcp" data-slug-pattern="([^"]+)"', page)[1]
    assert html.unescape(pattern) == MCP_SLUG_RE.pattern
    # Nothing but elements in the head (stray text there would end it early, and push the rest into the body).
    head = re.search(r"<head>(.*)</head>", page, re.S)[1]
    assert re.sub(r"<title>.*</title>|<[^>]+>", "", head, flags=re.S).strip() == ""
    # The vendor libraries come before the modules that use them, in the one block that holds them.
    assert page.index("vendor/highlight/highlight.min.js") < page.index("conversations/chat/main.js")


@pytest.mark.django_db
def test_every_element_id_of_the_chat_page_is_its_own(client, django_user_model) -> None:
    """Scripts find their elements by id: two elements sharing one (the composer's line naming an agent's
    MCP servers and the My agents form's field once did) leave one of them dead."""
    client.force_login(django_user_model.objects.create_user("ids", password="pw-for-tests-only"))
    page = client.get("/c/page-ids/").content.decode()
    assert 'id="my-agents-open"' in page  # the signed-in page, with every dialog
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) > 50
    assert sorted(i for i in set(ids) if ids.count(i) > 1) == []


@pytest.mark.django_db
def test_a_fresh_installs_models_offer_their_reasoning_effort(client) -> None:
    """The seeded models think: their options say so, so the page offers reasoning effort before any sync."""
    page = client.get("/c/fresh-models/").content.decode()
    options = re.findall(r'<option value="([^"]+)"([^>]*)>', page)
    thinking = {value for value, attributes in options if "data-thinks" in attributes}
    assert {"openai/gpt-5.1", "anthropic/claude-opus-4-5-20251101", "google/gemini-3-pro-preview"} <= thinking
