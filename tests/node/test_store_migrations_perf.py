"""Migrations 3 (indexes for the portal's pages) and 4 (rendered Markdown): upgrades keep
content, plans use indexes, stored texts are rendered."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from node.identity import Identity
from node.markdown import excerpt, render_html
from node.store import Store, schema
from node.store import store as store_module
from node.store.store import unrendered_left
from node.trust import StaticTrust
from tests.node.test_store_support import (
    V3_INDEXES,
    FakeClock,
    downgrade,
    dump_views,
    listing_body,
    open_store,
)

REPLACED = {"listings_order", "listings_all_order", "library_order"}


def _indexes(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                       "AND name NOT LIKE 'sqlite_%'")}


def _fill(store: Store, clock: FakeClock) -> None:
    """Listings with equal timestamps (ties), expiring items, notices and library items."""
    now = int(clock())
    for n in range(30):  # one clock second: created_at ties, broken by id
        store.append("listing.post", listing_body(f"Chair {n}", category="for-sale",
                                                  expires_at=now + 100 if n % 3 == 0 else None),
                     actor="ada")
    pinned = store.append("listing.post", listing_body("Pinned ladder"), actor="ada")
    store.append("listing.edit", {"pinned": True}, actor="ada", target=pinned["id"])
    for n in range(5):
        store.append("notice.post", {"title": f"Notice {n}", "body": "Text",
                                     "urgent": n == 4, "expires_at": now + 50 * (n + 1)},
                     actor="ada")
    for n in range(6):
        store.append("library.add", {"title": f"Guide {n}", "media_type": "pdf",
                                     "mime": "application/pdf", "sha256": f"{n:064x}",
                                     "size": 10, "filename": f"g{n}.pdf",
                                     "collection": f"Shelf {n % 2}"}, actor="ada")


def _reads(store: Store) -> dict[str, Any]:
    """What the portal's pages ask the store, as comparable values."""
    return {
        "home": [x.id for x in store.listings(per_page=6).items],
        "all": [(p.total, [x.id for x in p.items])
                for p in (store.listings(page=n, per_page=7) for n in (1, 2, 5))],
        "category": [x.id for x in store.listings("for-sale", page=2, per_page=7).items],
        "count": store.listings("for-sale").total,
        "notices": [x.id for x in store.notices(limit=3)],
        "library": [x.id for x in store.library_items(per_page=4).items],
        "shelf": [x.id for x in store.library_items(collection="Shelf 1").items],
        "collections": store.collections(),
        "search": [h.id for h in store.search("chair", limit=50)],
        "search_count": store.search_count("chair"),
    }


def test_upgrade_from_version_2_keeps_content_and_answers(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ident, clock, db = Identity.generate(), FakeClock(), tmp_path / "n.db"
    with open_store(db, ident, clock=clock) as store:
        _fill(store, clock)
        before = _reads(store)
        conn = store._conn()
        downgrade(conn, 2)  # what a node of that release holds
        assert _indexes(conn) >= REPLACED
        views_before = dump_views(store)
    with open_store(db, ident, clock=clock) as store:
        conn = store._conn()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 6
        assert _indexes(conn) >= V3_INDEXES
        assert not REPLACED & _indexes(conn)
        after = dump_views(store)  # version 4 added rendered columns at the ends of rows
        assert {name: [row[:len(rows[0])] if rows else row for row in after[name]]
                for name, rows in views_before.items()} == views_before
        assert _reads(store) == before
        clock.advance(101)  # a third of the chairs expire
        assert store.listings("for-sale").total == before["count"] - 10
        store.append("listing.post", listing_body("New after upgrade"), actor="ada")
        assert store.listings(per_page=2).items[1].title == "New after upgrade"


def test_version_3_sets_fts_automerge(tmp_path: Path) -> None:
    with open_store(tmp_path / "n.db", Identity.generate()) as store:
        row = store._conn().execute(
            "SELECT v FROM search_index_config WHERE k = 'automerge'").fetchone()
        assert row is not None and int(row[0]) == 2


def _plan(conn: sqlite3.Connection, sql: str, *args: Any) -> str:
    return " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))


def test_page_queries_need_no_sort_and_no_full_table_scan(tmp_path: Path) -> None:
    with open_store(tmp_path / "n.db", Identity.generate()) as store:
        conn = store._conn()
        ordered = {
            "SELECT * FROM listings WHERE (expires_at IS NULL OR expires_at > ?) "
            "ORDER BY pinned DESC, created_at DESC, id LIMIT 20": (0,),
            "SELECT * FROM listings WHERE (expires_at IS NULL OR expires_at > ?) "
            "AND category = ? ORDER BY pinned DESC, created_at DESC, id LIMIT 20": (0, "free"),
            "SELECT * FROM library_items WHERE 1 ORDER BY created_at DESC, id LIMIT 20": (),
            "SELECT * FROM library_items WHERE collection = ? ORDER BY created_at DESC, id "
            "LIMIT 20": ("x",),
            "SELECT * FROM notices WHERE (expires_at IS NULL OR expires_at > ?) "
            "ORDER BY urgent DESC, pinned DESC, created_at DESC, id LIMIT 5": (0,),
        }
        for sql, args in ordered.items():
            plan = _plan(conn, sql, *args)
            assert "TEMP B-TREE" not in plan, (sql, plan)
            assert "USING INDEX" in plan, (sql, plan)
        counting = _plan(conn, "SELECT count(*) FROM listings WHERE (expires_at IS NULL "
                               "OR expires_at > ?) AND category = ?", 0, "free")
        assert "COVERING INDEX listings_expiry" in counting
        expiry = _plan(conn, "SELECT min(expires_at) FROM search_docs WHERE expires_at > ?", 0)
        assert "search_docs_expiry" in expiry


def test_upgrade_to_version_4_renders_every_stored_text(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ident, clock, db = Identity.generate(), FakeClock(), tmp_path / "n.db"
    text = "# Water\n\n**Bottled** water at the [library](/library/). <script>x</script>"
    with open_store(db, ident, clock=clock) as store:
        listing = store.append("listing.post", listing_body("Chair", body=text), actor="ada")
        notice = store.append("notice.post", {"title": "Water", "body": text}, actor="ada")
        item = store.append("library.add", {"title": "Guide", "media_type": "pdf",
                                            "mime": "application/pdf", "sha256": "a" * 64,
                                            "size": 10, "filename": "g.pdf",
                                            "description": text}, actor="ada")
        downgrade(store._conn(), 3)
    with open_store(db, ident, clock=clock) as store:
        html = render_html(text)
        assert "<h2>Water</h2>" in html and "<script>" not in html
        got = store.listing(listing["id"])
        assert got is not None and (got.body_html, got.excerpt) == (html, excerpt(text))
        got_notice = store.notice(notice["id"])
        assert got_notice is not None and got_notice.body_html == html
        got_item = store.library_item(item["id"])
        assert got_item is not None and got_item.description_html == html
        assert got_item.excerpt == "Water Bottled water at the library. <script>x</script>"
        assert store.render_again_if_stale() == 0  # done once, remembered
        store._conn().execute("UPDATE listings SET body_html = 'made by older rules'")
    monkeypatch.setattr(store_module, "RENDERER", "rules of a later release")
    with open_store(db, ident, clock=clock) as store:  # new rules: every text again
        got = store.listing(listing["id"])
        assert got is not None and got.body_html == html
        assert store._conn().execute("SELECT value FROM store_meta").fetchone()[0] == \
            "rules of a later release"
        assert store.render_again_if_stale() == 0


def test_new_rules_met_by_the_agent_leave_the_texts_to_the_portal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent renders nothing (node/markdown.py): opening the store after an upgrade that
    changed the rules, it stores stand-ins and lists them; the portal renders them."""
    ident, db = Identity.generate(), tmp_path / "n.db"
    text = "**Bottled** water at the [library](/library/)."
    with open_store(db, ident) as store:
        notice = store.append("notice.post", {"title": "Water", "body": text}, actor="ada")
        before = dump_views(store)
    monkeypatch.setattr(store_module, "RENDERER", "rules of a later release")
    trust = StaticTrust([ident.public_key])
    store = Store.open(db, ident, trust, render=False)  # as open_sync_service does
    try:
        got = store.notice(notice["id"])
        assert got is not None and got.body_html == f"<p>{text}</p>"  # the stand-in
        assert unrendered_left(store._conn())
        assert store.render_pending() == 1  # what portal/rendering.py does
        assert dump_views(store) == before
        assert not unrendered_left(store._conn())
    finally:
        store.close()
