"""Organisers' sessions, kept on the node (``data_dir/portal-sessions.sqlite3``).

The browser's cookie holds only a random session token; the node keeps the
SHA-256 of each live token with the account, when the session started, when
it was last used and when its password was last typed. A session is live
only while its row is: signing out deletes the row (a copied cookie dies with
it), and a row past the idle limit or the absolute lifetime is refused and
deleted at its next use. Only the token's hash is stored, so the file does not
hand out working cookies if it leaks.

Local to this node and never replicated: signing in on another node starts
another session there. SQLite in WAL mode, every change one transaction.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FILE_NAME", "SessionRow", "SessionStore"]

FILE_NAME = "portal-sessions.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    account    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL,
    auth_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_account ON sessions(account);
"""


@dataclass(frozen=True)
class SessionRow:
    """One live session: whose, and its times (Unix seconds)."""

    account: str
    created_at: int
    seen_at: int
    auth_at: int


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class SessionStore:
    """The node's live organisers' sessions (thread-safe; one connection, one lock)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] | None = None) -> None:
        """Open (creating, mode 0600) the sessions database at ``path``."""
        import time

        self._clock = clock or time.time
        self._lock = threading.Lock()
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def now(self) -> int:
        """The store's clock, in whole seconds."""
        return int(self._clock())

    def start(self, account: str) -> str:
        """A new session for ``account``; returns the token for the cookie."""
        token = secrets.token_urlsafe(32)
        now = self.now()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                             (_hash(token), account, now, now, now))
        return token

    def get(self, token: str) -> SessionRow | None:
        """The live session for ``token``, or ``None`` (unknown, signed out, purged)."""
        with self._lock:
            row = self._db.execute(
                "SELECT account, created_at, seen_at, auth_at FROM sessions "
                "WHERE token_hash = ?", (_hash(token),)).fetchone()
        return SessionRow(*row) if row else None

    def touch(self, token: str, *, authenticated: bool = False) -> None:
        """Record a use of the session now (and a typed password, when ``authenticated``)."""
        now = self.now()
        column = "seen_at = ?, auth_at = ?" if authenticated else "seen_at = ?"
        values = (now, now) if authenticated else (now,)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(f"UPDATE sessions SET {column} WHERE token_hash = ?",  # noqa: S608
                             (*values, _hash(token)))

    def end(self, token: str) -> None:
        """End one session (sign-out, or found expired)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (_hash(token),))

    def end_account(self, account: str, *, keep: str | None = None) -> int:
        """End every session of ``account`` (except ``keep``'s); returns how many ended."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.execute(
                "DELETE FROM sessions WHERE account = ? AND token_hash != ?",
                (account, _hash(keep) if keep else ""))
            return cursor.rowcount

    def purge(self, *, idle_s: int, lifetime_s: int) -> int:
        """Delete every session idle longer than ``idle_s`` or older than ``lifetime_s``."""
        now = self.now()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.execute(
                "DELETE FROM sessions WHERE seen_at < ? OR created_at < ?",
                (now - idle_s, now - lifetime_s))
            return cursor.rowcount

    def count(self, account: str | None = None) -> int:
        """How many sessions are stored (of ``account``, when given)."""
        with self._lock:
            if account is None:
                row = self._db.execute("SELECT count(*) FROM sessions").fetchone()
            else:
                row = self._db.execute("SELECT count(*) FROM sessions WHERE account = ?",
                                       (account,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()
