"""Migration 3 (indexes for the portal's pages): upgrades keep content, plans use indexes."""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from node.identity import Identity
from node.store import Store, schema
from tests.node.test_store_support import FakeClock, dump_views, listing_body, open_store

V3_INDEXES = {"listings_live_order", "listings_category_live_order", "listings_expiry",
              "library_recent", "library_collection_recent", "notices_order",
              "search_docs_expiry"}
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
    with monkeypatch.context() as patch:  # an older meshhub: migrations stop at version 2
        patch.setattr(schema, "migrate", functools.partial(schema.migrate, target=2))
        with open_store(db, ident, clock=clock) as store:
            _fill(store, clock)
            conn = store._conn()
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
            assert _indexes(conn) >= REPLACED
            before, views_before = _reads(store), dump_views(store)
    with open_store(db, ident, clock=clock) as store:
        conn = store._conn()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 3
        assert _indexes(conn) >= V3_INDEXES
        assert not REPLACED & _indexes(conn)
        assert dump_views(store) == views_before
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
