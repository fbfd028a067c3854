"""Views derived from the log: ordering, expiry, edits, deletes, order independence."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.identity import Identity
from node.store import Store
from tests.node.test_store_support import (
    T0,
    FakeClock,
    dump_views,
    listing_body,
    open_store,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    with open_store(tmp_path / "hub.db", Identity.generate(), clock=clock) as s:
        yield s


def test_listings_pinned_first_then_newest(store: Store, clock: FakeClock) -> None:
    old = store.append("listing.post", listing_body("old"), actor="ada")
    clock.advance(10)
    new = store.append("listing.post", listing_body("new"), actor="ada")
    clock.advance(10)
    pinned = store.append("listing.post", listing_body("pinned", pinned=True), actor="ada")
    assert [x.id for x in store.listings().items] == [pinned["id"], new["id"], old["id"]]


def test_listings_by_category_and_pages(store: Store) -> None:
    for i in range(25):
        store.append("listing.post", listing_body(f"free {i}"), actor="ada")
    store.append("listing.post", {**listing_body("job"), "category": "jobs"}, actor="ada")
    page = store.listings(category="free", page=2, per_page=10)
    assert page.total == 25 and len(page.items) == 10 and page.pages == 3
    assert page.has_next and page.has_prev
    assert store.listings(category="jobs").total == 1
    assert store.listings(page=99).items == ()


def test_expired_listing_hidden_but_still_readable(store: Store, clock: FakeClock) -> None:
    wire = store.append("listing.post", listing_body(expires_at=T0 + 60), actor="ada")
    assert store.listings().total == 1
    clock.advance(61)
    assert store.listings().total == 0
    assert store.listing(wire["id"]) is not None


def test_notices_urgent_then_pinned_then_newest(store: Store, clock: FakeClock) -> None:
    def post(title: str, **flags: Any) -> str:
        clock.advance(1)
        return store.append("notice.post", {"title": title, "body": "", **flags},
                            actor="ada")["id"]
    urgent = post("urgent", urgent=True)
    pinned = post("pinned", pinned=True)
    newest = post("newest")
    gone = post("expired", expires_at=int(clock.now) + 1)
    clock.advance(5)
    assert [n.id for n in store.notices()] == [urgent, pinned, newest]
    assert store.notice(gone) is not None
    assert [n.id for n in store.notices(limit=1)] == [urgent]
    second = store.notice_page(page=2, per_page=2)
    assert [n.id for n in second.items] == [newest] and second.total == 3
    everything = store.notice_page(per_page=10, now=0)
    assert [n.id for n in everything.items] == [urgent, pinned, gone, newest]


def test_edit_is_a_partial_patch_last_writer_wins(store: Store, clock: FakeClock) -> None:
    post = store.append("listing.post", listing_body(price="£5"), actor="ada")
    clock.advance(60)
    store.append("listing.edit", {"title": "Red sofa"}, actor="bo", target=post["id"])
    clock.advance(60)
    store.append("listing.edit", {"title": "Green sofa", "pinned": True}, actor="ada",
                 target=post["id"])
    listing = store.listing(post["id"])
    assert (listing.title, listing.price, listing.pinned) == ("Green sofa", "£5", True)
    assert listing.created_at == T0 and listing.updated_at == T0 + 120
    assert listing.actor == "ada"


def test_delete_removes_item_and_erases_text(store: Store) -> None:
    post = store.append("listing.post", listing_body("Private phone"), actor="ada")
    store.append("listing.edit", {"contact": "0123"}, actor="ada", target=post["id"])
    store.append("listing.delete", {}, actor="ada", target=post["id"])
    assert store.listing(post["id"]) is None
    assert store.search("Private") == []
    assert store.entry(post["id"])["body"] is None
    assert store.counts()["erased_entries"] == 2


def test_library_views_and_collections(store: Store) -> None:
    def add(title: str, collection: str, media_type: str) -> str:
        return store.append("library.add", {
            "title": title, "collection": collection, "media_type": media_type,
            "mime": "application/pdf", "sha256": "ab" * 32, "size": 10,
            "filename": "x.pdf"}, actor="ada")["id"]
    add("Water guide", "Health", "pdf")
    add("First aid", "Health", "pdf")
    add("Songs", "Music", "audio")
    assert store.collections() == [("Health", 2), ("Music", 1)]
    assert store.library_items(collection="Health").total == 2
    assert store.library_items(media_type="audio").items[0].title == "Songs"
    assert store.counts()["library_bytes"] == 10  # one file listed three times


def test_submission_lifecycle(store: Store, clock: FakeClock) -> None:
    sub = store.append("submission.create", {"category": "wanted", "title": "Ladder",
                                             "body": "to borrow", "contact": "flat 3"})
    assert [s.id for s in store.submissions()] == [sub["id"]]
    clock.advance(30)
    store.append("submission.decide", {"approve": False, "reason": "duplicate"},
                 actor="mo", target=sub["id"])
    decided = store.submission(sub["id"])
    assert (decided.status, decided.decided_by, decided.reason) == ("rejected", "mo",
                                                                   "duplicate")
    assert decided.decided_at == T0 + 30
    assert store.submissions() == [] and len(store.submissions("rejected")) == 1


def test_submissions_erased_after_retention(store: Store, clock: FakeClock) -> None:
    sub = store.append("submission.create", {"category": "wanted", "title": "Ladder",
                                             "body": "call me", "contact": "07700 900123"})
    assert store.erase_expired_submissions(retention_days=30) == 0
    clock.advance(31 * 86400)
    assert store.erase_expired_submissions(retention_days=30) == 1
    erased = store.submission(sub["id"])
    assert (erased.title, erased.body, erased.contact) == ("", "", "")
    assert erased.status == "pending"
    assert store.erase_expired_submissions(retention_days=30) == 0


def test_accounts_view_last_writer_wins(store: Store, clock: FakeClock) -> None:
    store.append("account.create", {"name": "ada", "role": "organiser",
                                    "password_hash": "$argon2id$one"})
    clock.advance(1)
    store.append("account.update", {"name": "ada", "role": "admin"}, actor="ada")
    account = store.account("ada")
    assert (account.role, account.display_name, account.disabled) == ("admin", "", False)
    assert [a.name for a in store.accounts()] == ["ada"]


def test_audit_lists_organiser_actions_newest_first(store: Store, clock: FakeClock) -> None:
    post = store.append("listing.post", listing_body("Sofa"), actor="ada")
    clock.advance(1)
    store.append("submission.create", {"category": "free", "title": "x", "body": ""})
    store.append("account.create", {"name": "bo", "role": "organiser",
                                    "password_hash": "$argon2id$secret"}, actor="ada")
    clock.advance(1)
    store.append("account.update", {"name": "bo", "password_hash": "$argon2id$new"},
                 actor="ada")
    events = store.audit().items
    assert [e.kind for e in events] == ["account.update", "account.create", "listing.post"]
    assert events[0].summary == "bo: password" and "$argon2" not in events[1].summary
    assert events[2].summary == "Sofa" and events[2].entry_id == post["id"]
    assert events[2].node == store.identity.fingerprint
    assert store.audit(since=T0 + 2).total == 1


def test_actions_of_the_same_moment_are_listed_newest_first(store: Store) -> None:
    """The clock did not move between them (its resolution, or a script posting several):
    still newest first, on the dashboard and every page of the audit alike."""
    titles = [f"Chair {n}" for n in range(8)]
    for title in titles:
        store.append("listing.post", listing_body(title), actor="ada")
    newest_first = [e.summary for e in store.audit(per_page=8).items]
    assert newest_first == titles[::-1]
    assert [e.summary for e in store.recent_audit(3)] == titles[:-4:-1]
    pages = [e.summary for page in (1, 2) for e in store.audit(page=page, per_page=4).items]
    assert pages == newest_first


# --- order independence -------------------------------------------------------

def varied_history(tmp_path: Path) -> tuple[list[dict[str, Any]], list[Identity]]:
    """Entries from three nodes: posts, cross-node edits, deletes, a submission."""
    ids = [Identity.generate() for _ in range(3)]
    clock = FakeClock()
    stores = [open_store(tmp_path / f"h{i}.db", ident, *ids, clock=clock)
              for i, ident in enumerate(ids)]
    a, b, c = stores
    try:
        sofa = a.append("listing.post", listing_body("Sofa"), actor="ada")
        lamp = a.append("listing.post", listing_body("Lamp"), actor="ada")
        note = a.append("notice.post", {"title": "Water", "body": "off"}, actor="ada")
        sub = a.append("submission.create", {"category": "wanted", "title": "Ladder",
                                             "body": "please"})
        a.append("account.create", {"name": "ada", "role": "admin",
                                    "password_hash": "$argon2id$a"})
        for other in (b, c):
            other.ingest(a.entries_since(other.vector()))
        clock.advance(5)
        b.append("listing.edit", {"title": "Sofa (blue)"}, actor="bo", target=sofa["id"])
        c.append("listing.edit", {"title": "Sofa (red)", "pinned": True}, actor="cy",
                 target=sofa["id"])
        c.append("listing.delete", {}, actor="cy", target=lamp["id"])
        b.append("notice.edit", {"urgent": True}, actor="bo", target=note["id"])
        clock.advance(5)
        b.append("submission.decide", {"approve": False, "reason": "no"}, actor="bo",
                 target=sub["id"])
        c.append("account.update", {"name": "ada", "display_name": "Ada L."}, actor="ada")
        # An edit of the deleted lamp made on a node that had not heard of the delete.
        b.append("listing.edit", {"price": "free"}, actor="bo", target=lamp["id"])
        wires: list[dict[str, Any]] = []
        for s in stores:
            wires.extend(w for w in s.entries_since({}) if w["header"]["author"]
                         == s.identity.public_key)
    finally:
        for s in stores:
            s.close()
    return wires, ids


def deliver_in_random_order(store: Store, wires: list[dict[str, Any]], seed: int) -> None:
    """Feed entries one at a time in a shuffled order, retrying those that came too early."""
    pending = list(wires)
    rng = random.Random(seed)
    while pending:
        rng.shuffle(pending)
        wire = pending.pop()
        report = store.ingest([wire])
        if report.rejected:
            assert report.rejected[0][1].startswith("gap"), report.rejected
            pending.insert(0, wire)


@pytest.mark.parametrize("seed", range(6))
def test_views_do_not_depend_on_arrival_order(tmp_path: Path, seed: int) -> None:
    wires, ids = varied_history(tmp_path)
    clock = FakeClock()
    with open_store(tmp_path / "ref.db", Identity.generate(), *ids, clock=clock) as ref, \
            open_store(tmp_path / f"r{seed}.db", Identity.generate(), *ids, clock=clock) as other:
        ref.ingest(wires)
        deliver_in_random_order(other, wires, seed)
        assert dump_views(other) == dump_views(ref)
        sofa = [x for x in ref.listings().items if x.title.startswith("Sofa")]
        assert len(sofa) == 1 and sofa[0].pinned
        assert ref.listings().total == 1  # the lamp stays deleted despite the late edit
        assert ref.account("ada").display_name == "Ada L."


def test_edit_arriving_before_its_target_applies_later(tmp_path: Path) -> None:
    a, b = Identity.generate(), Identity.generate()
    with open_store(tmp_path / "a.db", a, b) as sa, open_store(tmp_path / "b.db", b, a) as sb, \
            open_store(tmp_path / "c.db", Identity.generate(), a, b) as sc:
        post = sa.append("listing.post", listing_body("Sofa"), actor="ada")
        sb.ingest([post])
        edit = sb.append("listing.edit", {"pinned": True}, actor="bo", target=post["id"])
        assert sc.ingest([edit]).accepted == [edit["id"]]
        assert sc.listings().total == 0
        sc.ingest([post])
        assert sc.listing(post["id"]).pinned


def test_delete_arriving_before_post_keeps_it_deleted_and_erased(tmp_path: Path) -> None:
    a, b = Identity.generate(), Identity.generate()
    with open_store(tmp_path / "a.db", a, b) as sa, open_store(tmp_path / "b.db", b, a) as sb, \
            open_store(tmp_path / "c.db", Identity.generate(), a, b) as sc:
        post = sa.append("listing.post", listing_body("Sofa"), actor="ada")
        sb.ingest([post])
        delete = sb.append("listing.delete", {}, actor="bo", target=post["id"])
        sc.ingest([delete])
        sc.ingest([post])
        assert sc.listing(post["id"]) is None
        assert sc.entry(post["id"])["body"] is None


def test_a_new_database_is_shared_with_the_service_group_only(tmp_path: Path) -> None:
    """The portal and the agent (two users, one group) both write; others never read."""
    import os
    import stat

    old = os.umask(0o077)
    try:
        with open_store(tmp_path / "hub.sqlite3", Identity.generate()) as store:
            store.append("notice.post", {"title": "Water off", "body": "Until noon."},
                         actor="ada")
    finally:
        os.umask(old)
    for name in ("hub.sqlite3", "hub.sqlite3-wal", "hub.sqlite3-shm"):
        file = tmp_path / name
        if file.exists():
            assert stat.S_IMODE(file.stat().st_mode) == 0o660, name
