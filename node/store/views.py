"""Deriving the view tables from the log, one subject (item or account) at a time.

Every function here is a pure function of the *set* of entries stored for a
subject: rows are recomputed from all of them, ordered by (ts, author, seq),
so the result does not depend on the order in which entries arrived, and a
full rebuild equals the incremental state. The rules are specified in
docs/entry-format.md ("Deriving the views").
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from node.frozen import frozen
from node.markdown import excerpt, render_html, stand_in
from node.store.kinds import CREATING, KINDS

ITEM_TABLES = ("listings", "notices", "library_items", "submissions")

_LISTING_DEFAULTS: dict[str, Any] = {"price": "", "contact": "", "expires_at": None,
                                     "pinned": False, "from_submission": None}
_NOTICE_DEFAULTS: dict[str, Any] = {"urgent": False, "pinned": False, "expires_at": None}
_LIBRARY_DEFAULTS: dict[str, Any] = {"author": "", "language": "", "description": "",
                                     "collection": ""}
_ACCOUNT_DEFAULTS: dict[str, Any] = {"display_name": "", "disabled": False}
#: Per thread: the subjects derived with a stand-in for their Markdown (None: render now).
_later = threading.local()


@contextlib.contextmanager
def rendering_later() -> Iterator[set[str]]:
    """Within the block, rows this thread derives hold a plain stand-in for each text
    (:func:`node.markdown.stand_in`) instead of its rendered Markdown; yields the set of
    the subjects so derived, to be derived again (:func:`recompute`) by a process that
    renders (the agent stores replicated posts so, and the portal renders them:
    node/markdown.py says why)."""
    previous = getattr(_later, "subjects", None)
    subjects: set[str] = set()
    _later.subjects = subjects
    try:
        yield subjects
    finally:
        _later.subjects = previous


def render_ahead(body: Any) -> None:
    """Render the texts of an entry's ``body`` now, outside any transaction: the
    portal's renderer child is started (if it must be) and keeps the last answer, so
    deriving the row soon after does not wait (:meth:`node.store.Store.render_pending`)."""
    if isinstance(body, dict):
        for name in ("body", "description"):
            text = body.get(name)
            if isinstance(text, str) and text:
                render_html(text)
                excerpt(text)


def _render(subject: str, text: str | None) -> tuple[str, str]:
    """(HTML, excerpt) of ``text``: rendered, or a stand-in within :func:`rendering_later`."""
    later: set[str] | None = getattr(_later, "subjects", None)
    if later is None or not text:
        return render_html(text), excerpt(text)
    later.add(subject)
    return stand_in(text)


@frozen
class _Row:
    id: str
    ts: int
    actor: str | None
    kind: str
    body: dict[str, Any] | None


def _rows(conn: sqlite3.Connection, subject: str) -> list[_Row]:
    cursor = conn.execute(
        "SELECT id, ts, actor, kind, body FROM entries WHERE subject = ? "
        "ORDER BY ts, author, seq", (subject,))
    return [_Row(r[0], r[1], r[2], r[3], None if r[4] is None else json.loads(r[4]))
            for r in cursor]


def is_deleted(conn: sqlite3.Connection, subject: str) -> bool:
    """Whether any delete entry names ``subject`` (then it is gone for good)."""
    return conn.execute("SELECT 1 FROM entries WHERE subject = ? AND kind LIKE '%.delete' "
                        "LIMIT 1", (subject,)).fetchone() is not None


def erase_deleted(conn: sqlite3.Connection, subject: str) -> int:
    """Erase the bodies of a deleted subject's entries; returns how many were erased."""
    if not is_deleted(conn, subject):
        return 0
    cursor = conn.execute("UPDATE entries SET body = NULL WHERE subject = ? AND body IS NOT NULL "
                          "AND kind NOT LIKE '%.delete'", (subject,))
    return cursor.rowcount


def recompute(conn: sqlite3.Connection, subject: str) -> None:
    """Replace ``subject``'s view row(s) by what its entries say now."""
    if subject.startswith("erased:"):
        return
    rows = _rows(conn, subject)
    if subject.startswith("account:"):
        _account(conn, subject.removeprefix("account:"), rows)
        return
    for table in ITEM_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE id = ?", (subject,))  # noqa: S608 - fixed names
    unindex(conn, subject)
    creator = next((r for r in rows if r.id == subject), None)
    if creator is None or creator.kind not in CREATING:
        return  # edits or decisions waiting for their item, or nothing at all
    if any(r.kind.endswith(".delete") for r in rows):
        return  # a delete wins forever
    family = KINDS[creator.kind].family
    if family == "submission":
        _submission(conn, creator, rows)
        return
    if creator.body is None:
        return  # an erased item is not shown
    fields = dict(creator.body)
    updated = creator.ts
    for row in rows:
        if row.kind == f"{family}.edit" and row.body is not None:
            fields.update(row.body)
            updated = max(updated, row.ts)
    if family == "listing":
        _listing(conn, creator, {**_LISTING_DEFAULTS, **fields}, updated)
    elif family == "notice":
        _notice(conn, creator, {**_NOTICE_DEFAULTS, **fields}, updated)
    else:
        _library(conn, creator, {**_LIBRARY_DEFAULTS, **fields}, updated)


def _listing(conn: sqlite3.Connection, creator: _Row, f: dict[str, Any], updated: int) -> None:
    conn.execute(
        "INSERT INTO listings (id, category, title, body, price, contact, created_at, updated_at, "
        "expires_at, pinned, actor, from_submission, body_html, excerpt) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (creator.id, f["category"], f["title"], f["body"], f["price"], f["contact"],
         creator.ts // 1000, updated // 1000, f["expires_at"], int(f["pinned"]), creator.actor,
         f["from_submission"], *_render(creator.id, f["body"])))
    index(conn, "listing", creator.id, f["expires_at"], f["title"], f["body"], "", "")


def _notice(conn: sqlite3.Connection, creator: _Row, f: dict[str, Any], updated: int) -> None:
    conn.execute(
        "INSERT INTO notices (id, title, body, urgent, pinned, created_at, updated_at, "
        "expires_at, actor, body_html, excerpt) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (creator.id, f["title"], f["body"], int(f["urgent"]), int(f["pinned"]),
         creator.ts // 1000, updated // 1000, f["expires_at"], creator.actor,
         *_render(creator.id, f["body"])))
    index(conn, "notice", creator.id, f["expires_at"], f["title"], f["body"], "", "")


def _library(conn: sqlite3.Connection, creator: _Row, f: dict[str, Any], updated: int) -> None:
    conn.execute(
        "INSERT INTO library_items (id, title, author, language, description, collection, "
        "media_type, mime, sha256, size, filename, created_at, updated_at, actor, "
        "description_html, excerpt) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (creator.id, f["title"], f["author"], f["language"], f["description"], f["collection"],
         f["media_type"], f["mime"], f["sha256"], f["size"], f["filename"],
         creator.ts // 1000, updated // 1000, creator.actor,
         *_render(creator.id, f["description"])))
    index(conn, "library", creator.id, None, f["title"], f["description"], f["author"],
          f["collection"])


def _submission(conn: sqlite3.Connection, creator: _Row, rows: list[_Row]) -> None:
    body = creator.body or {}
    decisions = [r for r in rows if r.kind == "submission.decide" and r.body is not None]
    approvals = [r for r in decisions if r.body and r.body.get("approve")]
    # An approval created a listing, so any approval wins over any rejection.
    chosen = (approvals or decisions)[-1] if decisions else None
    status = "pending" if chosen is None else ("approved" if approvals else "rejected")
    decision = chosen.body if chosen is not None and chosen.body is not None else {}
    conn.execute(
        "INSERT INTO submissions (id, category, title, body, price, contact, submitted_at, "
        "status, decided_by, decided_at, reason, listing_id, erased, body_html) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (creator.id, body.get("category", ""), body.get("title", ""), body.get("body", ""),
         body.get("price", ""), body.get("contact", ""), creator.ts // 1000, status,
         chosen.actor if chosen else None, chosen.ts // 1000 if chosen else None,
         decision.get("reason", ""), decision.get("listing_id"), int(creator.body is None),
         _render(creator.id, body.get("body", ""))[0]))


def _account(conn: sqlite3.Connection, name: str, rows: list[_Row]) -> None:
    conn.execute("DELETE FROM accounts WHERE name = ?", (name,))
    creates = [r for r in rows if r.kind == "account.create" and r.body is not None]
    if not creates:
        return  # updates wait for the account to exist
    fields: dict[str, Any] = dict(_ACCOUNT_DEFAULTS)
    first = creates[0].ts
    updated = first
    for row in rows:
        if row.body is not None and row.ts >= first:
            fields.update(row.body)
            updated = row.ts
    conn.execute(
        "INSERT INTO accounts (name, display_name, role, password_hash, disabled, created_at, "
        "updated_at) VALUES (?,?,?,?,?,?,?)",
        (name, fields["display_name"], fields["role"], fields["password_hash"],
         int(fields["disabled"]), first // 1000, updated // 1000))


def index(conn: sqlite3.Connection, kind: str, item_id: str, expires_at: int | None,
          title: str, body: str, author: str, collection: str) -> None:
    """Add an item to the full-text index."""
    cursor = conn.execute("INSERT INTO search_docs (kind, item_id, expires_at) VALUES (?,?,?)",
                          (kind, item_id, expires_at))
    conn.execute("INSERT INTO search_index (rowid, title, body, author, collection) "
                 "VALUES (?,?,?,?,?)", (cursor.lastrowid, title, body, author, collection))


def unindex(conn: sqlite3.Connection, item_id: str) -> None:
    """Remove an item from the full-text index (no-op if absent)."""
    row = conn.execute("SELECT rowid FROM search_docs WHERE item_id = ?", (item_id,)).fetchone()
    if row is not None:
        conn.execute("DELETE FROM search_index WHERE rowid = ?", (row[0],))
        conn.execute("DELETE FROM search_docs WHERE rowid = ?", (row[0],))
