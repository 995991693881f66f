"""A document cut into chunks: each chunk's span is exactly its text in its page (with Unicode and CRLF
line ends too), no chunk crosses a page or a heading or is over its token budget, its section's headings
travel with each chunk, and a document making too many chunks is refused."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from conversations.knowledge.chunks import Chunk, TooManyChunks, document_chunks, page_headings
from conversations.usage_ledger import tokens_estimate

GUIDE = """# Harbour guide

The harbour opens at dawn. Boats leave on the tide.

## Tides

Tides rise twice a day. {tides}

### Spring tides

Spring tides follow the full moon.

## Lighthouse

```sh
# not a heading: a comment in a code block
lamp --on
```

The keeper lights the lamp at dusk.
"""


def spans_exact(pages: list[str], chunks: list[Chunk]) -> None:
    for chunk in chunks:
        assert 1 <= chunk.page <= len(pages)
        assert pages[chunk.page - 1][chunk.start : chunk.end] == chunk.text
        assert chunk.text.strip()


def test_headings_travel_with_their_sections_and_code_blocks_hold_none():
    page = GUIDE.format(tides="The sea rises and falls along the quay. " * 12)
    chunks = document_chunks([page], chunk_tokens=40)
    spans_exact([page], chunks)

    def headings_of(text: str) -> tuple[str, ...]:
        [chunk] = [chunk for chunk in chunks if text in chunk.text]
        return chunk.headings

    assert headings_of("The harbour opens at dawn.") == ("Harbour guide",)
    assert headings_of("Spring tides follow the full moon.") == ("Harbour guide", "Tides", "Spring tides")
    assert headings_of("The keeper lights the lamp at dusk.") == ("Harbour guide", "Lighthouse")
    assert headings_of("lamp --on") == ("Harbour guide", "Lighthouse")
    tides = [chunk for chunk in chunks if "sea rises" in chunk.text]
    assert len(tides) > 1
    assert {chunk.headings for chunk in tides} == {("Harbour guide", "Tides")}
    assert [title for _, _, title in page_headings(page)] == [
        "Harbour guide",
        "Tides",
        "Spring tides",
        "Lighthouse",
    ]


def test_heading_titles_and_lines_that_are_not_headings():
    page = "## Closed ##\n#Not a heading\n####### Seven is too deep\n    # Indented code\n# C# tips\n#\n"
    assert [(level, title) for _, level, title in page_headings(page)] == [(2, "Closed"), (1, "C# tips")]


def test_a_long_line_costs_linear_work():
    line = "# " + " \t" * 200_000 + "x #" + " " * 200_000 + "#a"
    started = time.monotonic()
    chunks = document_chunks([line, "#" * 6 + " " * 300_000], chunk_tokens=400)
    assert time.monotonic() - started < 5
    assert {chunk.headings for chunk in chunks} == {(("x #" + " " * 200_000)[:200],)}
    assert [chunk.text for chunk in chunks if chunk.page == 2] == ["######"]  # a heading without a title


def test_a_small_document_is_one_chunk_per_page_and_headings_carry_over_pages():
    pages = ["# Report\r\n\r\nPage one says hello.", "Page two goes on.", "## Annex\nPage three ends."]
    chunks = document_chunks(pages, chunk_tokens=400)
    spans_exact(pages, chunks)
    assert [(chunk.page, chunk.headings) for chunk in chunks] == [
        (1, ("Report",)),
        (2, ("Report",)),
        (3, ("Report", "Annex")),
    ]
    assert chunks[0].text == "# Report\r\n\r\nPage one says hello."
    assert chunks[0].tokens == tokens_estimate(len(chunks[0].text))


def test_unicode_and_crlf_spans_are_character_offsets():
    page = "Intro\r\n\r\n" + "Café naïve 😀 日本語のテキスト résumé. " * 40 + "\r\n\r\n## Fin\r\nÉnd."
    chunks = document_chunks([page], chunk_tokens=20)
    spans_exact([page], chunks)
    assert (chunks[-1].text, chunks[-1].headings) == ("## Fin\r\nÉnd.", ("Fin",))
    assert all(chunk.tokens <= 20 for chunk in chunks)


def test_a_document_over_the_chunk_cap_is_refused_before_splitting_when_its_size_says_so(settings):
    settings.CHAT_KNOWLEDGE_MAX_CHUNKS = 10
    with pytest.raises(TooManyChunks, match="at least 11 chunks"):
        document_chunks(["x" * (64 * 10 + 1)], chunk_tokens=16)
    # Short words cut at word ends make more chunks than their letters alone say.
    words = " ".join(["abcdefghijk"] * 55)
    with pytest.raises(TooManyChunks, match="more than the 10 chunks"):
        document_chunks([words], chunk_tokens=16)
    assert len(document_chunks(["x" * 640], chunk_tokens=16)) == 10


def test_the_settings_give_the_defaults(settings):
    settings.CHAT_KNOWLEDGE_CHUNK_TOKENS = 16
    settings.CHAT_KNOWLEDGE_MAX_CHUNKS = 3
    assert [chunk.tokens for chunk in document_chunks(["y" * 64 * 3])] == [16, 16, 16]
    with pytest.raises(TooManyChunks):
        document_chunks(["y" * (64 * 3 + 1)])


LINES = st.one_of(
    st.text(min_size=0, max_size=80),
    st.builds(lambda level, title: "#" * level + " " + title, st.integers(1, 6), st.text(max_size=20)),
    st.sampled_from(["", "```", "~~~", "- item", "1. step", "| a | b |", "> quote"]),
)
PAGES = st.lists(
    st.tuples(st.lists(LINES, max_size=30), st.sampled_from(["\n", "\r\n", "\r"])).map(
        lambda page: page[1].join(page[0])
    ),
    min_size=1,
    max_size=4,
)


@hypothesis_settings(max_examples=150, deadline=None)
@given(pages=PAGES, chunk_tokens=st.integers(16, 64))
def test_any_document_makes_exact_spans_within_budget_in_page_order(pages, chunk_tokens):
    chunks = document_chunks(pages, chunk_tokens=chunk_tokens, max_chunks=100_000)
    spans_exact(pages, chunks)
    assert all(chunk.tokens <= chunk_tokens for chunk in chunks)
    positions = [(chunk.page, chunk.start) for chunk in chunks]
    assert positions == sorted(positions)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.page < after.page or before.end <= after.start
    for page_number, page in enumerate(pages, start=1):
        heading_starts = {offset for offset, _, _ in page_headings(page)}
        for chunk in chunks:
            if chunk.page == page_number:  # a heading starts a chunk or lies outside it
                assert not any(chunk.start < offset < chunk.end for offset in heading_starts)
        kept = "".join(chunk.text for chunk in chunks if chunk.page == page_number)
        assert "".join(kept.split()) == "".join(page.split())  # all but whitespace is in some chunk
