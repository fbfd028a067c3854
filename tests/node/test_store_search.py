"""Full-text search: relevance, prefixes, snippets, and no syntax errors from user input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.identity import Identity
from node.store import Store
from node.store.search import fts_query
from tests.node.test_store_support import T0, FakeClock, listing_body, open_store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    with open_store(tmp_path / "hub.db", Identity.generate(), clock=clock) as s:
        s.append("listing.post", {**listing_body("Bicycle for a child"),
                                  "body": "Small red bicycle, good brakes."}, actor="ada")
        s.append("notice.post", {"title": "Water outage on Elm Street",
                                 "body": "The water is off on Tuesday from 9 to 12."},
                 actor="ada")
        s.append("library.add", {"title": "Clean water at home", "author": "Médecins Sans",
                                 "collection": "Health", "description": "A guide.",
                                 "media_type": "pdf", "mime": "application/pdf",
                                 "sha256": "ab" * 32, "size": 1, "filename": "w.pdf"},
                 actor="ada")
        yield s


def test_finds_across_kinds_title_matches_first(store: Store) -> None:
    hits = store.search("water")
    assert [h.kind for h in hits] == ["notice", "library"] or \
        [h.kind for h in hits] == ["library", "notice"]
    assert all(h.rank > 0 for h in hits)
    assert store.search_count("water") == 2


def test_prefix_match_on_last_word(store: Store) -> None:
    assert [h.title for h in store.search("bicyc")] == ["Bicycle for a child"]
    assert store.search("bicyc red") == []  # only the last word is a prefix...
    assert len(store.search("red bicyc")) == 1  # ...so typing order works


def test_accents_and_case_do_not_matter(store: Store) -> None:
    assert store.search("MEDECINS")[0].kind == "library"


def test_snippet_is_plain_text_from_the_body(store: Store) -> None:
    hit = store.search("tuesday")[0]
    assert "Tuesday" in hit.snippet and "<" not in hit.snippet


@pytest.mark.parametrize("query", ['"', "AND", "water OR", "NEAR(", "*", "title:water",
                                   "a\"b", "(((", "-water", "^", "😀", "", "   "])
def test_user_input_never_causes_an_fts_error(store: Store, query: str) -> None:
    store.search(query)
    store.search_count(query)


def test_fts_query_quotes_every_term() -> None:
    assert fts_query('water "OR" elm') == '"water" "OR" "elm"*'
    assert fts_query("!!!") is None


def test_expired_items_are_not_found(store: Store, clock: FakeClock) -> None:
    store.append("listing.post", listing_body("Kayak", expires_at=T0 + 10), actor="ada")
    assert store.search_count("kayak") == 1
    clock.advance(11)
    assert store.search_count("kayak") == 0


def test_edits_update_the_index(store: Store) -> None:
    wire = store.append("listing.post", listing_body("Toaster"), actor="ada")
    store.append("listing.edit", {"title": "Kettle"}, actor="ada", target=wire["id"])
    assert store.search("toaster") == []
    assert store.search("kettle")[0].id == wire["id"]


def test_offset_and_limit(store: Store) -> None:
    for i in range(5):
        store.append("listing.post", listing_body(f"Chair {i}"), actor="ada")
    assert len(store.search("chair", limit=2)) == 2
    assert len(store.search("chair", limit=10, offset=3)) == 2


def test_items_named_by_the_words_come_first_then_mentions_newest_first(store: Store) -> None:
    """The ranking a resident relies on (node/store/search.py, two tiers): whatever names
    the words (title, author, collection) comes before items that merely mention them,
    however many or new those are; named ones by bm25 (a title outweighs a collection);
    mentions newest first; every match on some page, once."""
    named = store.append("listing.post", {**listing_body("Red sofa, two seats"),
                                          "body": "Collect from Elm St."}, actor="ada")
    half = store.append("listing.post", {**listing_body("Sofa"), "body": "Red, a bit worn."},
                        actor="ada")
    shelved = store.append("library.add", {
        "title": "Upholstery at home", "author": "Ana", "collection": "Red sofa repairs",
        "description": "Re-covering.", "media_type": "pdf", "mime": "application/pdf",
        "sha256": "cd" * 32, "size": 1, "filename": "u.pdf"}, actor="ada")
    mentions = [store.append("listing.post", {**listing_body(f"Cushion {i}"),
                                              "body": "Matches the red sofa " * 3},
                             actor="ada")["id"] for i in range(25)]
    hits = store.search("red sofa", limit=30)
    ids = [h.id for h in hits]
    assert ids[:2] == [named["id"], shelved["id"]]  # title outweighs collection
    assert ids[2:] == [*reversed(mentions), half["id"]][:28]  # then mentions, newest first
    assert store.search_count("red sofa") == 28
    paged = [h.id for n in range(0, 28, 5) for h in store.search("red sofa", limit=5, offset=n)]
    assert paged == ids[:28] and len(set(paged)) == 28
