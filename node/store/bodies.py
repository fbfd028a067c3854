"""Erased and missing bodies: which null bodies a node's own rules erased, and restoring the rest.

A body is covered by ``body_hash`` in the signed header, not by the
signature, so it can travel as ``null``. Only two things may erase it
(docs/entry-format.md §6): a signed delete entry naming its item, held by
this node, and this node's own retention rule for residents' submissions.
Any other ``null`` body is **missing**: the node fetches it from a peer that
has it and checks it against ``body_hash`` (:meth:`node.store.Store.ingest`
restores it). So a peer's say-so can never erase a body.

Every function here runs on a connection, inside the caller's transaction
where it writes.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from node.canonical import canonical
from node.store import views
from node.store.entries import Entry

#: Residents' submissions are erased by each node's retention rule (privacy).
_RETAINED_KIND = "submission.create"

#: ``body IS NULL`` and not erased by a rule this node applies: a delete it holds, or
#: the retention of submissions older than the cutoff (``?``, Unix milliseconds).
_MISSING = """
SELECT e.id FROM entries AS e
WHERE e.body IS NULL
  AND NOT (e.kind NOT LIKE '%.delete' AND EXISTS (
      SELECT 1 FROM entries AS d WHERE d.subject = e.subject AND d.kind LIKE '%.delete'))
  AND NOT (e.kind = 'submission.create' AND e.ts < ?)
ORDER BY e.author, e.seq
LIMIT ?
"""


def retention_cutoff_ms(now_s: float, retention_days: int) -> int:
    """Unix milliseconds before which submissions are erased by the retention rule."""
    return int((now_s - retention_days * 86400) * 1000)


def missing(conn: sqlite3.Connection, cutoff_ms: int, limit: int) -> list[str]:
    """Ids of entries whose body is null although no rule of this node erased it."""
    return [r[0] for r in conn.execute(_MISSING, (cutoff_ms, limit))]


def with_bodies(conn: sqlite3.Connection, ids: list[str]) -> list[tuple[str, str, str, str]]:
    """(id, header, sig, body) rows of the entries among ``ids`` held with their body."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT id, header, sig, body FROM entries WHERE id IN ({marks}) "  # noqa: S608
                        "AND body IS NOT NULL", ids).fetchall()
    order = {eid: i for i, eid in enumerate(ids)}
    return sorted(((r[0], r[1], r[2], r[3]) for r in rows), key=lambda r: order[r[0]])


def restore(conn: sqlite3.Connection, entry: Entry) -> bool:
    """Put back the (already verified) body of a held entry stored without one.

    Returns True if it was restored; False when the stored entry has its body,
    or when this node's rules erase it (its item is deleted). Views of the old
    and new subject are derived again (an account entry's subject comes from
    its body).
    """
    if entry.body is None:
        return False
    row = conn.execute("SELECT subject FROM entries WHERE id = ? AND body IS NULL",
                       (entry.id,)).fetchone()
    if row is None:
        return False
    old_subject, subject = row[0], entry.subject
    if not entry.kind.endswith(".delete") and views.is_deleted(conn, subject):
        return False
    body: Any = canonical(entry.body).decode("utf-8")
    conn.execute("UPDATE entries SET body = ?, subject = ? WHERE id = ?",
                 (body, subject, entry.id))
    if entry.kind.endswith(".delete"):
        views.erase_deleted(conn, subject)
    if old_subject != subject:
        views.recompute(conn, old_subject)
    views.recompute(conn, subject)
    return True
