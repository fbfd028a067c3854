"""Helpers shared by the store, hub and replication tests (no tests of its own)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from node.hub import Hub
from node.identity import Identity
from node.store import Store, schema
from node.trust import StaticTrust

#: Fixed start time of the fake clock: 2025-01-01T00:00:00Z.
T0 = 1_735_689_600


class FakeClock:
    """A clock the test moves by hand (Unix seconds)."""

    def __init__(self, now: float = T0) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def cheap_hasher() -> PasswordHasher:
    """Argon2id with tiny costs so that tests stay fast (never use on a node)."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def open_store(path: Path, identity: Identity, *others: Identity,
               clock: FakeClock | None = None) -> Store:
    """A store at ``path`` trusting ``identity`` and ``others``."""
    trust = StaticTrust([identity.public_key, *(o.public_key for o in others)])
    return Store.open(path, identity, trust, clock=clock or FakeClock())


def make_hub(store: Store, clock: FakeClock) -> Hub:
    """A Hub over ``store``: admin 'ada', organiser 'olu', both with password 'correct horse'."""
    hub = Hub(store, clock=clock, password_hasher=cheap_hasher())
    hub.create_account(None, name="ada", password="correct horse", role="admin")
    hub.create_account("ada", name="olu", password="correct horse", role="organiser")
    return hub


def listing_body(title: str = "Blue sofa", **extra: Any) -> dict[str, Any]:
    """A valid listing.post body."""
    return {"category": "free", "title": title, "body": "Collect from Elm St.", **extra}


def dump_views(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every view table's rows (and the search index's text), for exact comparisons."""
    conn = store._conn()
    tables = {
        "listings": "SELECT * FROM listings ORDER BY id",
        "notices": "SELECT * FROM notices ORDER BY id",
        "library_items": "SELECT * FROM library_items ORDER BY id",
        "accounts": "SELECT * FROM accounts ORDER BY name",
        "submissions": "SELECT * FROM submissions ORDER BY id",
        "search": "SELECT d.kind, d.item_id, d.expires_at, s.title, s.body, s.author, "
                  "s.collection FROM search_docs d JOIN search_index s ON s.rowid = d.rowid "
                  "ORDER BY d.item_id",
        "bodies": "SELECT id, body IS NULL FROM entries ORDER BY id",
    }
    return {name: [tuple(r) for r in conn.execute(sql)] for name, sql in tables.items()}


#: The indexes version 3 made.
V3_INDEXES = {"listings_live_order", "listings_category_live_order", "listings_expiry",
              "library_recent", "library_collection_recent", "notices_order",
              "search_docs_expiry"}
#: Columns version 4 added (table, column).
V4_COLUMNS = (("listings", "body_html"), ("listings", "excerpt"), ("notices", "body_html"),
              ("notices", "excerpt"), ("library_items", "description_html"),
              ("library_items", "excerpt"), ("submissions", "body_html"))
#: The indexes version 3 replaced, as versions 1 and 2 made them.
V2_INDEXES = ("CREATE INDEX listings_order ON listings (category, pinned DESC, created_at DESC)",
              "CREATE INDEX listings_all_order ON listings (pinned DESC, created_at DESC)",
              "CREATE INDEX library_order ON library_items (collection, created_at DESC)")


#: The table version 2 made and version 5 dropped.
V2_COUNTERS = ("CREATE TABLE counters (key TEXT NOT NULL, window_start INTEGER NOT NULL, "
               "count INTEGER NOT NULL, PRIMARY KEY (key, window_start)) WITHOUT ROWID")


def downgrade(conn: sqlite3.Connection, version: int) -> None:
    """Turn a current database into what an older release left (content kept): undo the
    schema steps above ``version``, newest first. The views' rows stay as they are."""
    assert schema.SCHEMA_VERSION == 6, "teach downgrade() the new step"
    conn.execute("BEGIN IMMEDIATE")
    if version < 6:
        conn.execute("DROP TABLE reports")
    if version < 5:
        conn.execute(V2_COUNTERS)
    if version < 4:
        for table, column in V4_COLUMNS:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute("DROP TABLE store_meta")
    if version < 3:
        for name in sorted(V3_INDEXES):
            conn.execute(f"DROP INDEX {name}")
        for statement in V2_INDEXES:
            conn.execute(statement)
        conn.execute("DELETE FROM search_index_config WHERE k = 'automerge'")
    if version < 2:
        conn.execute("DROP TABLE counters")
        conn.execute("DROP INDEX entries_audit")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("COMMIT")
