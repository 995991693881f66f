"""Every relative link in the README and docs/ leads somewhere: the file exists, and an anchor names a
heading of the file it points into (GitHub's rule: lowercase, punctuation dropped, spaces to '-')."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "deploy" / "README.md",
    ROOT / "bench" / "README.md",
]

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+).*?\1")
# [text](target) and ![alt](target), the target up to a space (a title) or the closing parenthesis.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading's text: its markup gone, lowercase, every character but letters,
    digits, '_', '-' and spaces dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = "".join(char for char in text if char.isalnum() or char in "_- ")
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings; a repeated one gets -1, -2, ... as on GitHub."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = anchor(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links_of(path: Path) -> list[str]:
    targets = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        targets.extend(LINK.findall(CODE_SPAN.sub("", line)))
    return targets


def test_anchor_follows_githubs_rule() -> None:
    assert anchor("Accounts, isolation and limits") == "accounts-isolation-and-limits"
    assert anchor("Why `CHANNEL_LAYERS` is empty") == "why-channel_layers-is-empty"
    assert anchor("The real API, or the stand-in") == "the-real-api-or-the-stand-in"
    assert anchor("What `make test` needs") == "what-make-test-needs"


def test_links_are_found_outside_code(tmp_path: Path) -> None:
    sample = tmp_path / "sample.md"
    sample.write_text(
        "# Title\n\nSee [a](docs/x.md#y), ![b](s.png) and `[not](a-link)`.\n\n```\n[nor](this)\n```\n",
        encoding="utf-8",
    )
    assert links_of(sample) == ["docs/x.md#y", "s.png"]
    assert anchors_of(sample) == {"title"}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    broken = []
    for target in links_of(document):
        if SCHEME.match(target):
            continue
        path_part, _, fragment = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors_of(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.relative_to(ROOT)}")
    assert not broken, f"{document.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_docs_file_is_listed_in_the_readme() -> None:
    readme = set(links_of(ROOT / "README.md"))
    docs = sorted((ROOT / "docs").glob("*.md"))
    unlisted = [path.name for path in docs if f"docs/{path.name}" not in readme]
    assert not unlisted, f"README.md's Reference does not link {unlisted}"
