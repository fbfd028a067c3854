"""The SQLite schema and its versioned migrations.

``PRAGMA user_version`` holds the number of migration steps applied. Each
step in :data:`MIGRATIONS` runs once, in its own transaction, in order; a
step is never edited after release, only followed by a new one.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.errors import StoreError

#: How long a connection waits for another writer before giving up, in ms.
BUSY_TIMEOUT_MS = 10_000

_V1 = """
CREATE TABLE entries (
    id          TEXT PRIMARY KEY,
    author      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    ts          INTEGER NOT NULL,
    actor       TEXT,
    kind        TEXT NOT NULL,
    target      TEXT,
    subject     TEXT NOT NULL,
    header      TEXT NOT NULL,
    sig         TEXT NOT NULL,
    body        TEXT,
    received_at INTEGER NOT NULL,
    UNIQUE (author, seq)
);
CREATE INDEX entries_subject ON entries (subject);

CREATE TABLE listings (
    id TEXT PRIMARY KEY, category TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,
    price TEXT NOT NULL, contact TEXT NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, expires_at INTEGER, pinned INTEGER NOT NULL,
    actor TEXT, from_submission TEXT
);
CREATE INDEX listings_order ON listings (category, pinned DESC, created_at DESC);
CREATE INDEX listings_all_order ON listings (pinned DESC, created_at DESC);

CREATE TABLE notices (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, urgent INTEGER NOT NULL,
    pinned INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    expires_at INTEGER, actor TEXT
);

CREATE TABLE library_items (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, author TEXT NOT NULL, language TEXT NOT NULL,
    description TEXT NOT NULL, collection TEXT NOT NULL, media_type TEXT NOT NULL,
    mime TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, filename TEXT NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, actor TEXT
);
CREATE INDEX library_order ON library_items (collection, created_at DESC);
CREATE INDEX library_sha ON library_items (sha256);

CREATE TABLE accounts (
    name TEXT PRIMARY KEY, display_name TEXT NOT NULL, role TEXT NOT NULL,
    password_hash TEXT NOT NULL, disabled INTEGER NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE submissions (
    id TEXT PRIMARY KEY, category TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,
    price TEXT NOT NULL, contact TEXT NOT NULL, submitted_at INTEGER NOT NULL,
    status TEXT NOT NULL, decided_by TEXT, decided_at INTEGER, reason TEXT NOT NULL,
    listing_id TEXT, erased INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX submissions_status ON submissions (status, submitted_at);

-- One row per searchable item; its rowid is the search_index rowid.
CREATE TABLE search_docs (
    rowid INTEGER PRIMARY KEY, kind TEXT NOT NULL, item_id TEXT NOT NULL UNIQUE,
    expires_at INTEGER
);
CREATE VIRTUAL TABLE search_index USING fts5 (
    title, body, author, collection, tokenize = 'unicode61 remove_diacritics 2'
);
"""

_V2 = """
-- Local only, never replicated: rate limits (sign-in, submissions) and counters.
CREATE TABLE counters (
    key TEXT NOT NULL, window_start INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
) WITHOUT ROWID;
-- The audit page reads organisers' entries newest first.
CREATE INDEX entries_audit ON entries (ts DESC) WHERE actor IS NOT NULL;
"""

_V3 = """
-- Page queries answered from indexes (docs/store.md, "Indexes"): each order ends
-- with id (the tie-break the queries use, so equal timestamps need no sort) and
-- carries expires_at (so the expiry filter needs no table lookup). IF [NOT] EXISTS:
-- a hand-repaired database may lack an old index or already have a new one.
DROP INDEX IF EXISTS listings_order;
DROP INDEX IF EXISTS listings_all_order;
CREATE INDEX IF NOT EXISTS listings_live_order
    ON listings (pinned DESC, created_at DESC, id, expires_at);
CREATE INDEX IF NOT EXISTS listings_category_live_order
    ON listings (category, pinned DESC, created_at DESC, id, expires_at);
-- Counting live listings (all, or of one category) from a small covering index.
CREATE INDEX IF NOT EXISTS listings_expiry ON listings (category, expires_at);
DROP INDEX IF EXISTS library_order;
CREATE INDEX IF NOT EXISTS library_recent ON library_items (created_at DESC, id);
CREATE INDEX IF NOT EXISTS library_collection_recent
    ON library_items (collection, created_at DESC, id);
CREATE INDEX IF NOT EXISTS notices_order
    ON notices (urgent DESC, pinned DESC, created_at DESC, id);
-- The next moment an item expires (the portal's page cache must not outlive it).
CREATE INDEX IF NOT EXISTS search_docs_expiry
    ON search_docs (expires_at) WHERE expires_at IS NOT NULL;
-- Merge the full-text index's segments more eagerly (FTS5 default: 4): a query
-- reads every segment, so fewer of them make prefix searches several times cheaper.
INSERT INTO search_index (search_index, rank) VALUES ('automerge', 2);
"""

_V4 = """
-- Markdown rendered when a view row is derived (node/markdown.py): sanitised HTML and a
-- plain-text excerpt beside each text, so that reading a page never parses Markdown.
ALTER TABLE listings ADD COLUMN body_html TEXT NOT NULL DEFAULT '';
ALTER TABLE listings ADD COLUMN excerpt TEXT NOT NULL DEFAULT '';
ALTER TABLE notices ADD COLUMN body_html TEXT NOT NULL DEFAULT '';
ALTER TABLE notices ADD COLUMN excerpt TEXT NOT NULL DEFAULT '';
ALTER TABLE library_items ADD COLUMN description_html TEXT NOT NULL DEFAULT '';
ALTER TABLE library_items ADD COLUMN excerpt TEXT NOT NULL DEFAULT '';
ALTER TABLE submissions ADD COLUMN body_html TEXT NOT NULL DEFAULT '';
-- Local facts about this database, never replicated: "renderer" names the rules the
-- stored HTML was made with (Store.open renders everything again when they change).
CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""

_V5 = """
-- The counters table (version 2) was never used outside tests: the portal's rate limits
-- live in memory (portal/ratelimit.py). IF EXISTS: a hand-repaired database may lack it.
DROP TABLE IF EXISTS counters;
"""

_V6 = """
-- Local only, never replicated: residents' reports of a listing ("Report this listing"),
-- for this node's moderators (node/store/reports.py). No address or cookie is kept.
CREATE TABLE reports (
    id INTEGER PRIMARY KEY, listing_id TEXT NOT NULL, reason TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '', reported_at INTEGER NOT NULL
);
CREATE INDEX reports_listing ON reports (listing_id);
"""

#: Migration steps; step N (1-based) brings the database from version N-1 to N.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6)
SCHEMA_VERSION = len(MIGRATIONS)

#: View tables rebuilt from the log (entries is the truth; these are derived).
VIEW_TABLES: tuple[str, ...] = ("listings", "notices", "library_items", "accounts",
                                "submissions", "search_docs")


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the settings every meshhub connection uses.

    Autocommit mode (``isolation_level=None``): every write opens its own
    ``BEGIN IMMEDIATE`` transaction. WAL with ``synchronous=FULL`` makes a
    committed write survive a crash or power loss.
    """
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open the content database ({exc}); if the file "
                         "is damaged, move it aside and let the node sync from its "
                         "neighbours") from None
    return conn


def migrate(conn: sqlite3.Connection, path: Path, *, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing migration steps up to ``target``; returns the version before.

    The version is read inside each step's write transaction, so two processes
    opening a new database at once do not both apply a step.
    """
    before: int | None = None
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            before = version if before is None else before
            if version > SCHEMA_VERSION:
                raise StoreError(f"{path}: database schema version {version} is newer than "
                                 f"this meshhub understands ({SCHEMA_VERSION}); upgrade meshhub")
            if version >= target:
                conn.execute("COMMIT")
                return before
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit early)."""
    statements, current = [], ""
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements
