"""Missing bodies: only a held delete or this node's retention rule erases; the rest is restored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.identity import Identity
from node.store import Store
from tests.node.test_store_support import FakeClock, listing_body, open_store

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def erased(wire: dict[str, Any]) -> dict[str, Any]:
    return {**wire, "body": None}


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Store, Store, FakeClock]]:
    a, b = Identity.generate(), Identity.generate()
    clock = FakeClock()
    with open_store(tmp_path / "a.db", a, b, clock=clock) as sa, \
            open_store(tmp_path / "b.db", b, a, clock=clock) as sb:
        yield sa, sb, clock


def test_a_body_that_arrived_erased_is_missing_until_it_is_restored(
        pair: tuple[Store, Store, FakeClock]) -> None:
    sa, sb, _ = pair
    post = sa.append("listing.post", listing_body("Sofa"), actor="ada")
    assert sb.ingest([erased(post)]).accepted == [post["id"]]
    assert sb.listing(post["id"]) is None
    assert sb.missing_bodies(10, retention_days=30) == [post["id"]]
    assert sb.entries_with_bodies([post["id"]]) == []
    assert sa.entries_with_bodies([post["id"]]) == [post]

    report = sb.ingest(sa.entries_with_bodies([post["id"]]))
    assert report.restored == [post["id"]] and report.duplicates == []
    assert sb.listing(post["id"]).title == "Sofa"
    assert [hit.id for hit in sb.search("sofa")] == [post["id"]]
    assert sb.missing_bodies(10, retention_days=30) == []
    assert sb.ingest([post]).duplicates == [post["id"]]  # a second copy changes nothing


def test_bodies_erased_by_a_held_delete_are_not_missing_and_never_restored(
        pair: tuple[Store, Store, FakeClock]) -> None:
    sa, sb, _ = pair
    post = sa.append("listing.post", listing_body("Sofa"), actor="ada")
    edit = sa.append("listing.edit", {"title": "Sofa, blue"}, actor="ada", target=post["id"])
    sb.ingest([post, erased(edit)])
    assert sb.missing_bodies(10, retention_days=30) == [edit["id"]]
    gone = sa.append("listing.delete", {"reason": "sold"}, actor="ada", target=post["id"])
    sb.ingest([gone])
    assert sb.missing_bodies(10, retention_days=30) == []
    assert sb.ingest([edit]).duplicates == [edit["id"]]  # the delete's signed act holds
    assert sb.entries_with_bodies([post["id"], edit["id"], gone["id"]]) == [gone]


def test_a_delete_that_arrived_erased_gets_its_reason_back(
        pair: tuple[Store, Store, FakeClock]) -> None:
    sa, sb, _ = pair
    post = sa.append("notice.post", {"title": "Choir", "body": "Sunday"}, actor="ada")
    gone = sa.append("notice.delete", {"reason": "cancelled"}, actor="ada", target=post["id"])
    sb.ingest([post, erased(gone)])
    assert sb.notice(post["id"]) is None  # a delete erases even without its body
    assert sb.missing_bodies(10, retention_days=30) == [gone["id"]]
    assert sb.ingest([gone]).restored == [gone["id"]]
    assert sb.entry(gone["id"]) == gone


def test_old_submissions_are_erased_by_the_nodes_own_retention_rule(
        pair: tuple[Store, Store, FakeClock]) -> None:
    sa, sb, clock = pair
    sub = sa.append("submission.create", {"category": "wanted", "title": "Ladder",
                                          "body": "x", "contact": "flat 3"})
    sb.ingest([erased(sub)])
    assert sb.missing_bodies(10, retention_days=30) == [sub["id"]]
    clock.advance(31 * 86400)
    assert sb.missing_bodies(10, retention_days=30) == []
    assert sb.missing_bodies(10, retention_days=60) == [sub["id"]]


def test_an_account_entry_restored_creates_the_account(
        pair: tuple[Store, Store, FakeClock]) -> None:
    sa, sb, _ = pair
    made = sa.append("account.create", {"name": "ada", "role": "organiser",
                                        "password_hash": HASH})
    sb.ingest([erased(made)])
    assert sb.account("ada") is None
    assert sb.ingest([made]).restored == [made["id"]]
    assert sb.account("ada").role == "organiser"
