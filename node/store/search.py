"""Full-text search over listings, notices and the library (SQLite FTS5, bm25).

Whatever a resident types becomes a safe FTS5 query: it is split into words,
each word is quoted (so ``AND``, ``"``, ``*``, ``:`` or ``(`` are just text,
never syntax), all words must match, and the last one also matches as a
prefix so that results appear while a word is still being typed.
"""

from __future__ import annotations

import re
import sqlite3

from node.store.models import SearchHit

#: At most this many words of a query are used (longer queries only slow things down).
MAX_TERMS = 12
_WORD = re.compile(r"\w+", re.UNICODE)
#: bm25 weights per column: title, body, author, collection.
_WEIGHTS = "10.0, 1.0, 4.0, 2.0"


def fts_query(text: str) -> str | None:
    """The FTS5 MATCH expression for ``text``, or None when it holds no word."""
    terms = _WORD.findall(text or "")[:MAX_TERMS]
    if not terms:
        return None
    quoted = [f'"{term}"' for term in terms]
    quoted[-1] += "*"
    return " ".join(quoted)


def search(conn: sqlite3.Connection, text: str, *, now: int, limit: int = 20,
           offset: int = 0) -> list[SearchHit]:
    """The best matches for ``text`` (expired items left out), most relevant first.

    ``SearchHit.rank`` is the negated bm25 score: higher is more relevant.
    """
    query = fts_query(text)
    if query is None:
        return []
    rows = conn.execute(
        f"SELECT d.kind, d.item_id, search_index.title, "  # noqa: S608 - constant weights
        f"snippet(search_index, 1, '', '', '…', 16), bm25(search_index, {_WEIGHTS}) AS score "
        "FROM search_index JOIN search_docs AS d ON d.rowid = search_index.rowid "
        "WHERE search_index MATCH ? AND (d.expires_at IS NULL OR d.expires_at > ?) "
        "ORDER BY score, d.item_id LIMIT ? OFFSET ?",
        (query, now, max(0, limit), max(0, offset))).fetchall()
    return [SearchHit(kind=r[0], id=r[1], title=r[2], snippet=r[3], rank=-float(r[4]))
            for r in rows]


def search_count(conn: sqlite3.Connection, text: str, *, now: int) -> int:
    """How many items match ``text`` (for pagination)."""
    query = fts_query(text)
    if query is None:
        return 0
    (count,) = conn.execute(
        "SELECT count(*) FROM search_index JOIN search_docs AS d "
        "ON d.rowid = search_index.rowid WHERE search_index MATCH ? "
        "AND (d.expires_at IS NULL OR d.expires_at > ?)", (query, now)).fetchone()
    return int(count)
