"""What the portal and the CLI read: the view tables as model records.

:class:`StoreReads` is mixed into :class:`node.store.Store`; every method
runs on the calling thread's own connection and never writes.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from node.identity import fingerprint
from node.store import search as _search
from node.store.models import (
    Account,
    AuditEvent,
    LibraryItem,
    Listing,
    Notice,
    Page,
    SearchHit,
    Submission,
)

MAX_PER_PAGE = 200
#: Items not expired at the time given as the query's parameter.
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


def _page_args(page: int, per_page: int) -> tuple[int, int, int]:
    page = max(1, int(page))
    per_page = min(MAX_PER_PAGE, max(1, int(per_page)))
    return page, per_page, (page - 1) * per_page


def _listing(r: sqlite3.Row) -> Listing:
    return Listing(id=r["id"], category=r["category"], title=r["title"], body=r["body"],
                   price=r["price"], contact=r["contact"], created_at=r["created_at"],
                   updated_at=r["updated_at"], expires_at=r["expires_at"],
                   pinned=bool(r["pinned"]), actor=r["actor"],
                   from_submission=r["from_submission"], body_html=r["body_html"],
                   excerpt=r["excerpt"])


def _notice(r: sqlite3.Row) -> Notice:
    return Notice(id=r["id"], title=r["title"], body=r["body"], urgent=bool(r["urgent"]),
                  pinned=bool(r["pinned"]), created_at=r["created_at"],
                  updated_at=r["updated_at"], expires_at=r["expires_at"], actor=r["actor"],
                  body_html=r["body_html"], excerpt=r["excerpt"])


def _library(r: sqlite3.Row) -> LibraryItem:
    return LibraryItem(id=r["id"], title=r["title"], author=r["author"],
                       language=r["language"], description=r["description"],
                       collection=r["collection"], media_type=r["media_type"], mime=r["mime"],
                       sha256=r["sha256"], size=r["size"], filename=r["filename"],
                       created_at=r["created_at"], updated_at=r["updated_at"], actor=r["actor"],
                       description_html=r["description_html"], excerpt=r["excerpt"])


def _account(r: sqlite3.Row) -> Account:
    return Account(name=r["name"], display_name=r["display_name"], role=r["role"],
                   password_hash=r["password_hash"], disabled=bool(r["disabled"]),
                   created_at=r["created_at"], updated_at=r["updated_at"])


def _submission(r: sqlite3.Row) -> Submission:
    return Submission(id=r["id"], category=r["category"], title=r["title"], body=r["body"],
                      price=r["price"], contact=r["contact"], submitted_at=r["submitted_at"],
                      status=r["status"], decided_by=r["decided_by"],
                      decided_at=r["decided_at"], reason=r["reason"],
                      listing_id=r["listing_id"], body_html=r["body_html"])


def _changed(kind: str, body: str | None) -> tuple[str, ...]:
    """The field names an edit or account update changed (for a readable audit)."""
    if body is None or not (kind.endswith(".edit") or kind == "account.update"):
        return ()
    return tuple(sorted(k for k in json.loads(body) if k != "name"))


def audit_summary(kind: str, body: dict[str, Any] | None) -> str:
    """A short, safe description of what an entry did (never a password hash)."""
    if body is None:
        return "(text erased)"
    if kind.startswith("account."):
        changed = sorted(k for k in body if k != "name")
        changes = ", ".join("password" if k == "password_hash" else k for k in changed)
        return f"{body.get('name', '')}: {changes}" if kind == "account.update" else \
            f"{body.get('name', '')} ({body.get('role', '')})"
    if kind == "submission.decide":
        verdict = "approved" if body.get("approve") else "rejected"
        return f"{verdict}: {body['reason']}" if body.get("reason") else verdict
    if kind.endswith(".edit"):
        return "changed " + ", ".join(sorted(body))
    if kind.endswith(".delete"):
        return "deleted" + (f": {body['reason']}" if body.get("reason") else "")
    return str(body.get("title", ""))


class StoreReads:
    """Read-only queries over the views; needs ``_conn()`` and ``_now()`` from the store."""

    def _conn(self) -> sqlite3.Connection:  # pragma: no cover - provided by Store
        raise NotImplementedError

    def _now(self) -> int:  # pragma: no cover - provided by Store
        raise NotImplementedError

    # --- listings ------------------------------------------------------------
    def listings(self, category: str | None = None, page: int = 1, per_page: int = 20,
                 now: int | None = None) -> Page[Listing]:
        """Live listings (expired ones hidden), pinned first, then newest."""
        page, per_page, offset = _page_args(page, per_page)
        where = _LIVE
        args: list[Any] = [self._now() if now is None else now]
        if category is not None:
            where += " AND category = ?"
            args.append(category)
        conn = self._conn()
        (total,) = conn.execute(f"SELECT count(*) FROM listings WHERE {where}",  # noqa: S608
                                args).fetchone()
        rows = conn.execute(f"SELECT * FROM listings WHERE {where} "  # noqa: S608
                            "ORDER BY pinned DESC, created_at DESC, id LIMIT ? OFFSET ?",
                            [*args, per_page, offset]).fetchall()
        return Page(tuple(_listing(r) for r in rows), page, per_page, total)

    def listing(self, listing_id: str) -> Listing | None:
        """A listing by id, expired or not; None if unknown or deleted."""
        row = self._conn().execute("SELECT * FROM listings WHERE id = ?",
                                   (listing_id,)).fetchone()
        return None if row is None else _listing(row)

    # --- notices -------------------------------------------------------------
    def notices(self, now: int | None = None, limit: int | None = None) -> list[Notice]:
        """Live notices: urgent first, then pinned, then newest."""
        return self._notices(self._now() if now is None else now,
                             -1 if limit is None else limit, 0)

    def notice_page(self, page: int = 1, per_page: int = 20,
                    now: int | None = None) -> Page[Notice]:
        """One page of :meth:`notices` (in the same order), with the number of live notices."""
        page, per_page, offset = _page_args(page, per_page)
        now = self._now() if now is None else now
        (total,) = self._conn().execute(f"SELECT count(*) FROM notices WHERE {_LIVE}",  # noqa: S608
                                        (now,)).fetchone()
        return Page(tuple(self._notices(now, per_page, offset)), page, per_page, total)

    def _notices(self, now: int, limit: int, offset: int) -> list[Notice]:
        rows = self._conn().execute(
            f"SELECT * FROM notices WHERE {_LIVE} "  # noqa: S608
            "ORDER BY urgent DESC, pinned DESC, created_at DESC, id LIMIT ? OFFSET ?",
            (now, limit, offset)).fetchall()
        return [_notice(r) for r in rows]

    def notice(self, notice_id: str) -> Notice | None:
        """A notice by id, expired or not; None if unknown or deleted."""
        row = self._conn().execute("SELECT * FROM notices WHERE id = ?",
                                   (notice_id,)).fetchone()
        return None if row is None else _notice(row)

    # --- library -------------------------------------------------------------
    def library_items(self, collection: str | None = None, media_type: str | None = None,
                      page: int = 1, per_page: int = 20) -> Page[LibraryItem]:
        """Library items, newest first, optionally of one collection and/or media type."""
        page, per_page, offset = _page_args(page, per_page)
        clauses, args = [], []
        if collection is not None:
            clauses.append("collection = ?")
            args.append(collection)
        if media_type is not None:
            clauses.append("media_type = ?")
            args.append(media_type)
        where = " AND ".join(clauses) or "1"
        conn = self._conn()
        (total,) = conn.execute(f"SELECT count(*) FROM library_items WHERE {where}",  # noqa: S608
                                args).fetchone()
        rows = conn.execute(f"SELECT * FROM library_items WHERE {where} "  # noqa: S608
                            "ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                            [*args, per_page, offset]).fetchall()
        return Page(tuple(_library(r) for r in rows), page, per_page, total)

    def library_item(self, item_id: str) -> LibraryItem | None:
        """A library item by id; None if unknown or deleted."""
        row = self._conn().execute("SELECT * FROM library_items WHERE id = ?",
                                   (item_id,)).fetchone()
        return None if row is None else _library(row)

    def library_items_by_sha(self, sha256: str) -> list[LibraryItem]:
        """Items whose file has this SHA-256 (a file may be listed more than once)."""
        rows = self._conn().execute("SELECT * FROM library_items WHERE sha256 = ?",
                                    (sha256,)).fetchall()
        return [_library(r) for r in rows]

    def collections(self) -> list[tuple[str, int]]:
        """Named collections with their item counts, alphabetically."""
        rows = self._conn().execute(
            "SELECT collection, count(*) FROM library_items WHERE collection != '' "
            "GROUP BY collection ORDER BY collection").fetchall()
        return [(r[0], r[1]) for r in rows]

    def media_type_counts(self, collection: str | None = None) -> dict[str, int]:
        """How many library items there are of each media type (only types that have any),
        optionally within one collection: the library's filters show these counts."""
        rows = self._conn().execute(
            "SELECT media_type, count(*) FROM library_items WHERE ? IS NULL OR collection = ? "
            "GROUP BY media_type", (collection, collection)).fetchall()
        return {r[0]: r[1] for r in rows}

    # --- search --------------------------------------------------------------
    def search(self, q: str, limit: int = 20, offset: int = 0) -> list[SearchHit]:
        """Full-text search across listings, notices and the library (see search.py)."""
        return _search.search(self._conn(), q, now=self._now(), limit=limit, offset=offset)

    def search_count(self, q: str) -> int:
        """How many items ``q`` matches."""
        return _search.search_count(self._conn(), q, now=self._now())

    # --- accounts and moderation --------------------------------------------
    def accounts(self) -> list[Account]:
        """Every organiser account, by name."""
        rows = self._conn().execute("SELECT * FROM accounts ORDER BY name").fetchall()
        return [_account(r) for r in rows]

    def account(self, name: str) -> Account | None:
        """An account by name, or None."""
        row = self._conn().execute("SELECT * FROM accounts WHERE name = ?", (name,)).fetchone()
        return None if row is None else _account(row)

    def submissions(self, status: str | None = "pending") -> list[Submission]:
        """Submissions with ``status`` (None: all): pending oldest first, others newest first."""
        conn = self._conn()
        if status is None:
            rows = conn.execute("SELECT * FROM submissions ORDER BY submitted_at DESC, id")
        else:
            order = "ASC" if status == "pending" else "DESC"
            rows = conn.execute(f"SELECT * FROM submissions WHERE status = ? "  # noqa: S608
                                f"ORDER BY submitted_at {order}, id", (status,))
        return [_submission(r) for r in rows.fetchall()]

    def submission(self, submission_id: str) -> Submission | None:
        """A submission by id, or None."""
        row = self._conn().execute("SELECT * FROM submissions WHERE id = ?",
                                   (submission_id,)).fetchone()
        return None if row is None else _submission(row)

    # --- audit ---------------------------------------------------------------
    def audit(self, page: int = 1, per_page: int = 50,
              since: int | None = None) -> Page[AuditEvent]:
        """Organisers' actions from the log, newest first (``since``: Unix seconds)."""
        page, per_page, offset = _page_args(page, per_page)
        since_ms = 0 if since is None else since * 1000
        conn = self._conn()
        (total,) = conn.execute("SELECT count(*) FROM entries WHERE actor IS NOT NULL "
                                "AND ts >= ?", (since_ms,)).fetchone()
        return Page(self._audit_events(since_ms, per_page, offset), page, per_page, total)

    def recent_audit(self, limit: int) -> tuple[AuditEvent, ...]:
        """The ``limit`` latest organisers' actions, newest first, without :meth:`audit`'s
        count of them all (0.7 ms with 15,000 entries, for the dashboard's ten)."""
        return self._audit_events(0, limit, 0)

    def _audit_events(self, since_ms: int, limit: int, offset: int) -> tuple[AuditEvent, ...]:
        # Actions of the same moment (a clock's resolution, or a script posting several)
        # newest first too: one node's entries by their sequence, the same order on
        # every node (the entry id, a hash, would put them in any order).
        rows = self._conn().execute(
            "SELECT id, ts, actor, kind, target, author, body FROM entries "
            "WHERE actor IS NOT NULL AND ts >= ? ORDER BY ts DESC, author, seq DESC "
            "LIMIT ? OFFSET ?",
            (since_ms, limit, offset)).fetchall()
        return tuple(AuditEvent(
            entry_id=r["id"], at=r["ts"] // 1000, actor=r["actor"], kind=r["kind"],
            target=r["target"],
            summary=audit_summary(r["kind"], None if r["body"] is None else json.loads(r["body"])),
            node=fingerprint(r["author"]),
            fields=_changed(r["kind"], r["body"])) for r in rows)

    # --- figures -------------------------------------------------------------
    def dashboard_counts(self) -> dict[str, int]:
        """The organisers' dashboard's figures: live listings, notices, library items and
        submissions waiting, each read from an index (well under a millisecond with
        10,000 listings).

        Not :meth:`counts`, whose other figures scan every entry's body and every
        library item (13 ms of the dashboard's 21 with 10,000 listings and 5,000 items,
        for numbers the dashboard never shows).
        """
        conn = self._conn()
        now = self._now()

        def one(sql: str, *args: Any) -> int:
            return int(conn.execute(sql, args).fetchone()[0] or 0)

        return {
            "listings_live": one("SELECT count(*) FROM listings WHERE expires_at IS NULL "
                                 "OR expires_at > ?", now),
            "notices": one("SELECT count(*) FROM notices"),
            "library_items": one("SELECT count(*) FROM library_items"),
            "submissions_pending": one("SELECT count(*) FROM submissions "
                                       "WHERE status = 'pending'"),
        }

    def counts(self) -> dict[str, int]:
        """Figures for stats pages and ``meshhub store stats``."""
        conn = self._conn()
        now = self._now()

        def one(sql: str, *args: Any) -> int:
            return int(conn.execute(sql, args).fetchone()[0] or 0)

        return {
            "entries": one("SELECT count(*) FROM entries"),
            "erased_entries": one("SELECT count(*) FROM entries WHERE body IS NULL"),
            "authors": one("SELECT count(DISTINCT author) FROM entries"),
            "listings": one("SELECT count(*) FROM listings"),
            "listings_live": one("SELECT count(*) FROM listings WHERE expires_at IS NULL "
                                 "OR expires_at > ?", now),
            "notices": one("SELECT count(*) FROM notices"),
            "library_items": one("SELECT count(*) FROM library_items"),
            "library_bytes": one("SELECT sum(size) FROM (SELECT DISTINCT sha256, size "
                                 "FROM library_items)"),
            "accounts": one("SELECT count(*) FROM accounts"),
            "submissions_pending": one("SELECT count(*) FROM submissions "
                                       "WHERE status = 'pending'"),
            "search_docs": one("SELECT count(*) FROM search_docs"),
        }
