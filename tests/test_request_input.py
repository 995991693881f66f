"""Hostile query strings never reach the database as such: an offset out of range is refused with 400 and
a search text is made storable (no NUL, no lone surrogate) before it is used.
"""

from __future__ import annotations

import pytest

from conversations.text import text_storable

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client):
    """A test client with the anonymous browser session a chat page gives it (the list needs an owner)."""
    client.get("/c/warmup/")
    return client


@pytest.mark.parametrize("offset", ["9223372036854775808", "-1", "1e3", "abc", "100000001", "9" * 5000, "١٢"])
def test_an_offset_that_is_no_page_number_is_refused_with_400(browser, offset):
    response = browser.get("/api/conversations/", {"offset": offset})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_offset"


def test_a_large_offset_within_range_is_an_empty_page(browser):
    response = browser.get("/api/conversations/", {"offset": "100000000"})
    assert response.status_code == 200
    assert response.json()["conversations"] == []


@pytest.mark.parametrize("query", ["a\x00b", "\x00"])
def test_a_search_with_nul_is_searched_not_a_500(browser, query):
    response = browser.get("/api/conversations/", {"q": query})
    assert response.status_code == 200
    assert response.json()["conversations"] == []


def test_a_search_with_nul_or_a_surrogates_bytes_in_the_raw_query_string_is_not_a_500(browser):
    assert browser.get("/api/conversations/?q=a%00b").status_code == 200
    assert browser.get("/api/conversations/?q=%ED%A0%80").status_code == 200


def test_text_storable_drops_nul_and_replaces_lone_surrogates():
    assert text_storable("a\x00b") == "ab"
    assert text_storable("a\ud800b\udfff") == "a\ufffdb\ufffd"
    assert text_storable("emoji 😀 stays") == "emoji 😀 stays"
    assert text_storable("") == ""
