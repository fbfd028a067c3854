"""The content store: the signed log in SQLite, the views built from it, replication.

Threading: one :class:`Store` is shared by all threads of a process (the
portal's waitress workers, the sync service). Each thread gets its own
SQLite connection on first use (thread-local); writes are serialised by a
lock inside the process and by ``BEGIN IMMEDIATE`` between processes (the
CLI and the portal may write at the same time). ``close()`` closes every
thread's connection. See docs/store.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.canonical import canonical, nfc, sha256_hex
from node.errors import EntryRejected, StoreError
from node.identity import Identity, fingerprint, verify_signature
from node.markdown import RENDERER
from node.store import bodies as _bodies
from node.store import entries as _entries
from node.store import schema, views
from node.store.entries import Entry
from node.store.queries import StoreReads
from node.store.reports import StoreReports
from node.trust import TrustedSet

#: How many entries ``entries_since`` returns by default (one sync round).
SYNC_BATCH = 500
#: SQLite page cache per connection, in KiB (read from the environment for benchmarks).
CACHE_KIB_PER_CONNECTION = int(os.environ.get("MESHHUB_SQLITE_CACHE_KIB", "128"))
Appender = Callable[..., dict[str, Any]]


@dataclass
class IngestReport:
    """What :meth:`Store.ingest` did with each entry it was given."""

    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[tuple[str | None, str]] = field(default_factory=list)  #: (id, reason)
    #: Held entries whose missing body this batch brought back (checked against body_hash).
    restored: list[str] = field(default_factory=list)


#: Mode of a new content database: read-write for the node's service group.
DB_FILE_MODE = 0o660

#: ``store_meta`` keys of subjects stored with a stand-in for their Markdown (+ subject).
UNRENDERED = "unrendered:"
#: The last key that can start with :data:`UNRENDERED` (a range's exclusive end).
_UNRENDERED_END = UNRENDERED + "\U0010ffff"
#: Target-less kinds whose latest entry is the current state (e.g. the update pause).
_SINGLETON_KINDS = frozenset({"update.pause", "broadcast.set"})

class Store(StoreReads, StoreReports):
    """The signed, replicated content of the hub. Open it with :meth:`Store.open`."""

    def __init__(self, path: Path, identity: Identity, trust: TrustedSet,
                 clock: Callable[[], float]) -> None:
        self.path = path
        self.identity = identity
        self.trust = trust
        self.clock = clock
        self._local = threading.local()
        #: Every open connection, with the thread it belongs to.
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._conns_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._closed = False

    @classmethod
    def open(cls, path: str | Path, identity: Identity, trust: TrustedSet, *,
             clock: Callable[[], float] | None = None, render: bool = True) -> Store:
        """Open (creating and migrating as needed) the database at ``path``.

        ``clock`` returns Unix seconds (default ``time.time``); tests pass a fake one.
        ``render``: False for a process that renders no Markdown (the agent, see
        :meth:`render_again_if_stale`).
        """
        db = Path(path)
        db.parent.mkdir(parents=True, exist_ok=True)
        if not db.exists():
            # The portal and the agent run as two users of one group and both write:
            # the file is group-writable from the start (SQLite gives its -wal and
            # -shm files the database file's permissions), never open to others.
            fd = os.open(db, os.O_CREAT | os.O_WRONLY, DB_FILE_MODE)
            os.close(fd)
            os.chmod(db, DB_FILE_MODE)
        store = cls(db, identity, trust, clock or time.time)
        try:
            schema.migrate(store._conn(), db)
            store.render_again_if_stale(render=render)
        except sqlite3.DatabaseError as exc:
            store.close()
            raise StoreError(f"{db}: cannot prepare the content database ({exc})") from None
        except BaseException:
            store.close()
            raise
        return store

    # --- lifecycle -------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = schema.connect(self.path)
            # Every thread has a connection: keep each one's page cache small (SQLite's
            # default is 2 MB each); the OS page cache holds the database file anyway.
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB_PER_CONNECTION}")
            self._local.conn = conn
            with self._conns_lock:
                # A thread that has ended (a sync round's pull worker: each round has new
                # ones) left its connection here. Close those now, or every round would
                # keep one more open for good: two file descriptors and its memory each.
                ended = [c for t, c in self._conns if not t.is_alive()]
                self._conns = [(t, c) for t, c in self._conns if t.is_alive()]
                self._conns.append((threading.current_thread(), conn))
            for old in ended:
                old.close()
        return conn

    def release(self) -> None:
        """Close the calling thread's connection, if it has one (it gets a new one if it
        reads again): for a thread that opened the store and will not read it again,
        such as the agent's main thread, which then only waits for a signal; otherwise
        that connection's memory stays for good."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._conns_lock:
            self._conns = [(t, c) for t, c in self._conns if c is not conn]
        conn.close()

    def close(self) -> None:
        """Close every thread's connection; calling it again does nothing."""
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for _thread, conn in conns:
            conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> int:
        return int(self.clock())

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error)."""
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                # SQLite may already have rolled back (e.g. SQLITE_FULL); a second
                # ROLLBACK would raise and hide the real error.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # --- writing this node's entries -------------------------------------------
    def append(self, kind: str, body: dict[str, Any], *, actor: str | None = None,
               target: str | None = None) -> dict[str, Any]:
        """Sign and store a new entry of this node; returns its wire form (with ``id``).

        Raises :class:`node.errors.EntryRejected` if the entry would be malformed.
        """
        with self.batch() as add:
            return add(kind, body, actor=actor, target=target)

    @contextlib.contextmanager
    def batch(self) -> Iterator[Appender]:
        """Append several entries in one transaction: all are stored, or none.

        Yields a function with :meth:`append`'s signature; later entries may
        refer to the ids of earlier ones (approval: listing, then decision).
        """
        with self._write() as conn:
            def add(kind: str, body: dict[str, Any], *, actor: str | None = None,
                    target: str | None = None) -> dict[str, Any]:
                entry = self._sign(conn, kind, nfc(body), actor, target)
                self._insert(conn, entry)
                return entry.wire()
            yield add

    def _sign(self, conn: sqlite3.Connection, kind: str, body: dict[str, Any],
              actor: str | None, target: str | None) -> Entry:
        me = self.identity.public_key
        last_seq, last_ts = conn.execute(
            "SELECT seq, ts FROM entries WHERE author = ? ORDER BY seq DESC LIMIT 1",
            (me,)).fetchone() or (0, 0)
        ts = max(int(self.clock() * 1000), last_ts)
        subject = target or (f"account:{body.get('name')}" if kind.startswith("account.") else None)
        if subject is not None:
            # Later than everything known about the item, even if this node's clock
            # is behind (a Pi without a real-time clock): last writer must win.
            (subject_ts,) = conn.execute("SELECT max(ts) FROM entries WHERE subject = ?",
                                         (subject,)).fetchone()
            if subject_ts is not None:
                ts = max(ts, subject_ts + 1)
        elif kind in _SINGLETON_KINDS:
            # A mesh-wide switch (latest entry wins): likewise later than the last one.
            (kind_ts,) = conn.execute("SELECT max(ts) FROM entries WHERE kind = ?",
                                      (kind,)).fetchone()
            if kind_ts is not None:
                ts = max(ts, kind_ts + 1)
        return _entries.build(self.identity, seq=last_seq + 1, ts=ts, kind=kind, body=body,
                              actor=actor, target=target)

    def _insert(self, conn: sqlite3.Connection, entry: Entry) -> None:
        """Store a checked entry and update the views it affects (inside a transaction)."""
        subject = entry.subject
        erase = views.is_deleted(conn, subject) and not entry.kind.endswith(".delete")
        body = None if entry.body is None or erase else canonical(entry.body).decode("utf-8")
        conn.execute(
            "INSERT INTO entries (id, author, seq, ts, actor, kind, target, subject, header, "
            "sig, body, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (entry.id, entry.author, entry.seq, entry.ts, entry.actor, entry.kind,
             entry.target, subject, canonical(entry.header).decode("utf-8"), entry.sig, body,
             int(self.clock() * 1000)))
        if entry.kind.endswith(".delete"):
            views.erase_deleted(conn, subject)
        views.recompute(conn, subject)

    # --- replication -------------------------------------------------------------
    def vector(self) -> dict[str, int]:
        """For every author held: the highest sequence number held (contiguous from 1)."""
        rows = self._conn().execute("SELECT author, max(seq) FROM entries GROUP BY author")
        return {r[0]: r[1] for r in rows}

    def digest(self) -> str:
        """16 hex digits summarising :meth:`vector`; equal digests mean equal logs."""
        return self.digest_of(self.vector())

    @staticmethod
    def digest_of(vector: dict[str, int]) -> str:
        """The digest of ``vector`` (:meth:`digest` of a store holding it)."""
        return hashlib.sha256(canonical(vector)).hexdigest()[:16]

    def entries_between(self, since: dict[str, int], upto: dict[str, int]
                        ) -> list[dict[str, Any]]:
        """Wire forms of each author's entries in ``upto`` after ``since`` and up to
        ``upto`` (what a node got since it last told its neighbours), in (author, seq)
        order."""
        conn = self._conn()
        out: list[dict[str, Any]] = []
        for author in sorted(upto):
            rows = conn.execute(
                "SELECT id, header, sig, body FROM entries WHERE author = ? AND seq > ? "
                "AND seq <= ? ORDER BY seq", (author, since.get(author, 0), upto[author]))
            out.extend(_entries.from_row(*r).wire() for r in rows)
        return out

    def entries_since(self, vector: dict[str, int],
                      limit: int = SYNC_BATCH) -> list[dict[str, Any]]:
        """Wire forms of entries the holder of ``vector`` lacks, in (author, seq) order."""
        if not isinstance(vector, dict):
            raise StoreError("a vector must map author keys to sequence numbers")
        out: list[dict[str, Any]] = []
        conn = self._conn()
        for author in sorted(self.vector()):
            if len(out) >= limit:
                break
            since = vector.get(author, 0)
            since = since if isinstance(since, int) and not isinstance(since, bool) else 0
            rows = conn.execute(
                "SELECT id, header, sig, body FROM entries WHERE author = ? AND seq > ? "
                "ORDER BY seq LIMIT ?", (author, since, limit - len(out)))
            out.extend(_entries.from_row(*r).wire() for r in rows)
        return out

    def missing_bodies(self, limit: int, *, retention_days: int, now: float | None = None
                       ) -> list[str]:
        """Ids of held entries without a body that no rule of this node erased.

        A peer may have sent them erased (``null``), or been sent them so: this
        node asks its peers for them (``POST /sync/v1/bodies``). Submissions
        older than ``retention_days`` and bodies of deleted items are erased by
        rule, so not missing (docs/entry-format.md §6).
        """
        now_s = self.clock() if now is None else now
        return _bodies.missing(self._conn(), _bodies.retention_cutoff_ms(now_s, retention_days),
                               limit)

    def entries_with_bodies(self, ids: list[str]) -> list[dict[str, Any]]:
        """Wire forms of the entries among ``ids`` this node holds with their body."""
        return [_entries.from_row(*r).wire() for r in _bodies.with_bodies(self._conn(), ids)]

    def entry(self, entry_id: str) -> dict[str, Any] | None:
        """One stored entry's wire form, or None."""
        row = self._conn().execute("SELECT id, header, sig, body FROM entries WHERE id = ?",
                                   (entry_id,)).fetchone()
        return None if row is None else _entries.from_row(*row).wire()

    def ingest(self, wires: Iterable[Any], *, render_later: bool = False) -> IngestReport:
        """Check and store entries from elsewhere; each is accepted, a duplicate, or rejected.

        Entries are taken in (author, seq) order whatever order they came in.
        An accepted entry is stored together with its view updates; a rejected
        one changes nothing. See docs/entry-format.md, "Ingest rules".
        ``render_later``: the views hold a plain stand-in for each Markdown text, and
        the subjects are listed for :meth:`render_pending` (replication: the agent
        renders nothing, the portal renders them, portal/rendering.py).
        """
        report = IngestReport()
        checked: list[Entry] = []
        for wire in wires:
            try:
                checked.append(_entries.parse_wire(wire, self.trust))
            except EntryRejected as exc:
                report.rejected.append((exc.entry_id, exc.reason))
        checked.sort(key=lambda e: (e.author, e.seq))
        if not checked:
            return report
        later: contextlib.AbstractContextManager[set[str]] = (
            views.rendering_later() if render_later else contextlib.nullcontext(set()))
        with self._write() as conn, later as unrendered:
            for entry in checked:
                conn.execute("SAVEPOINT entry")
                try:
                    outcome = self._ingest_one(conn, entry)
                except EntryRejected as exc:
                    conn.execute("ROLLBACK TO entry")
                    conn.execute("RELEASE entry")
                    report.rejected.append((entry.id, exc.reason))
                    continue
                conn.execute("RELEASE entry")
                {"accepted": report.accepted, "duplicate": report.duplicates,
                 "restored": report.restored}[outcome].append(entry.id)
            _list_unrendered(conn, unrendered)
        return report

    def render_pending(self, limit: int = 32) -> int:
        """Derive again, with their Markdown rendered, up to ``limit`` subjects that
        :meth:`ingest` stored with a stand-in; how many it did (0: none left).

        The portal calls it (portal/rendering.py). The texts are rendered once before
        the write transaction (starting the renderer child if need be,
        node/markdown.py), so that writers do not wait for that start; deriving the
        rows inside it then finds them rendered. The list is in ``store_meta`` (local,
        never replicated): what arrived while the portal was down is rendered when it
        starts.
        """
        conn = self._conn()
        subjects = [str(r[0])[len(UNRENDERED):] for r in conn.execute(
            "SELECT key FROM store_meta WHERE key > ? AND key < ? ORDER BY key LIMIT ?",
            (UNRENDERED, _UNRENDERED_END, limit))]
        if not subjects:
            return 0
        for (body,) in conn.execute(
                "SELECT body FROM entries WHERE body IS NOT NULL AND subject IN "
                "(SELECT value FROM json_each(?))", (json.dumps(subjects),)):
            views.render_ahead(json.loads(body))
        with self._write() as conn:
            for subject in subjects:
                views.recompute(conn, subject)
                conn.execute("DELETE FROM store_meta WHERE key = ?", (UNRENDERED + subject,))
        return len(subjects)

    def _ingest_one(self, conn: sqlite3.Connection, entry: Entry) -> str:
        """Store one verified entry if it fits the author's log: ``accepted``; if already
        held, ``restored`` when it brings back a missing body, else ``duplicate``."""
        if conn.execute("SELECT 1 FROM entries WHERE id = ?", (entry.id,)).fetchone():
            return "restored" if _bodies.restore(conn, entry) else "duplicate"
        (have,) = conn.execute("SELECT coalesce(max(seq), 0) FROM entries WHERE author = ?",
                               (entry.author,)).fetchone()
        if entry.seq <= have:
            raise EntryRejected(f"fork: conflicting entry for seq {entry.seq} of author "
                                f"{fingerprint(entry.author)}", entry.id)
        if entry.seq != have + 1:
            raise EntryRejected(f"gap: have up to {have} from author {fingerprint(entry.author)}"
                                f", got seq {entry.seq}", entry.id)
        self._insert(conn, entry)
        return "accepted"

    # --- maintenance ---------------------------------------------------------------
    def render_again_if_stale(self, *, render: bool = True) -> int:
        """Derive the views again if the Markdown rules changed; how many subjects it did.

        The views keep each text's HTML and excerpt made by :mod:`node.markdown`
        (see there); ``store_meta.renderer`` says by which rules. Rendering is part
        of deriving a row, so opening the store after an upgrade that changed the
        rules does :meth:`rebuild`'s work, in one transaction (checked again inside
        it: the portal and the agent may open the store at the same moment).
        ``render`` False (the agent, which renders nothing): the rows get a stand-in
        and their subjects are listed for :meth:`render_pending`, as replication's are.
        """
        conn = self._conn()
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'store_meta'").fetchone() \
                is None:
            return 0  # a schema older than version 4 (only tests stop migrations early)
        if self._renderer(conn) == RENDERER:
            return 0
        later: contextlib.AbstractContextManager[set[str]] = (
            contextlib.nullcontext(set()) if render else views.rendering_later())
        with self._write() as conn, later as unrendered:
            if self._renderer(conn) == RENDERER:
                return 0
            derived = self._derive_views(conn)
            _list_unrendered(conn, unrendered)
            return derived

    @staticmethod
    def _renderer(conn: sqlite3.Connection) -> str | None:
        row = conn.execute("SELECT value FROM store_meta WHERE key = 'renderer'").fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _set_renderer(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT OR REPLACE INTO store_meta (key, value) VALUES ('renderer', ?)",
                     (RENDERER,))

    def rebuild(self) -> dict[str, int]:
        """Drop every view and the search index and derive them again from the log."""
        with self._write() as conn:
            self._derive_views(conn)
        return self.counts()

    def _derive_views(self, conn: sqlite3.Connection) -> int:
        """Empty the views and the search index and derive them from the log (inside a
        write transaction); returns how many subjects were derived."""
        for table in schema.VIEW_TABLES:
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
        conn.execute("DELETE FROM search_index")
        deleted = [r[0] for r in conn.execute(
            "SELECT DISTINCT subject FROM entries WHERE kind LIKE '%.delete'")]
        for subject in deleted:
            views.erase_deleted(conn, subject)
        subjects = [r[0] for r in conn.execute("SELECT DISTINCT subject FROM entries")]
        for subject in subjects:
            views.recompute(conn, subject)
        self._set_renderer(conn)
        return len(subjects)

    def verify(self) -> list[tuple[str, str]]:
        """Re-check every stored entry: id, signature, body hash, trust; (id, problem) list."""
        problems: list[tuple[str, str]] = []
        rows = self._conn().execute("SELECT id, header, sig, body FROM entries "
                                    "ORDER BY author, seq")
        for eid, header_json, sig, body_json in rows:
            header = json.loads(header_json)
            if _entries.entry_id(header) != eid:
                problems.append((eid, "id does not match the header"))
            elif not verify_signature(header["author"], _entries.signing_message(header), sig):
                problems.append((eid, "bad signature"))
            elif body_json is not None and \
                    sha256_hex(body_json.encode("utf-8")) != header["body_hash"]:
                problems.append((eid, "body hash mismatch"))
            elif not self.trust.is_trusted(header["author"]):
                problems.append((eid, f"author {fingerprint(header['author'])} is no longer "
                                      "trusted"))
        return problems

    def erase_expired_submissions(self, now: float | None = None, *,
                                  retention_days: int = 30) -> int:
        """Erase residents' submissions older than ``retention_days``; returns how many."""
        now_s = self.clock() if now is None else now
        cutoff_ms = _bodies.retention_cutoff_ms(now_s, retention_days)
        with self._write() as conn:
            subjects = [r[0] for r in conn.execute(
                "UPDATE entries SET body = NULL WHERE kind = 'submission.create' "
                "AND body IS NOT NULL AND ts < ? RETURNING subject", (cutoff_ms,)).fetchall()]
            for subject in subjects:
                views.recompute(conn, subject)
        return len(subjects)


def _list_unrendered(conn: sqlite3.Connection, subjects: Iterable[str]) -> None:
    """List ``subjects`` (derived with a stand-in) for :meth:`Store.render_pending`."""
    conn.executemany("INSERT OR IGNORE INTO store_meta (key, value) VALUES (?, '')",
                     [(UNRENDERED + subject,) for subject in sorted(subjects)])


def unrendered_left(conn: sqlite3.Connection) -> bool:
    """Whether any subject waits for :meth:`Store.render_pending`, read on ``conn`` (any
    connection to the database, a read-only one too: the portal looks after each commit)."""
    return conn.execute("SELECT 1 FROM store_meta WHERE key > ? AND key < ? LIMIT 1",
                        (UNRENDERED, _UNRENDERED_END)).fetchone() is not None
