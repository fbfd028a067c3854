"""Full-text search over listings, notices and the library (SQLite FTS5, bm25).

Whatever a resident types becomes a safe FTS5 query: it is split into words,
each word is quoted (so ``AND``, ``"``, ``*``, ``:`` or ``(`` are just text,
never syntax), all words must match, and the last one also matches as a
prefix so that results appear while a word is still being typed.

Ranking, in two tiers (docs/store.md, "Search"):

1. items whose title, author or collection (what *names* them) hold every
   word of the query, by bm25 with the weights below;
2. then the items that only *mention* the words in their text (or part of
   them), most recently stored first.

Why not bm25 over every match: a common word ("water" after an announcement)
matches thousands of items, and scoring and sorting all of them took 8-12 ms
of CPU per query on a desktop core (10,000 listings and 5,000 library items),
several times that on a Pi. The named matches are a small share, and the
mentions come in the index's own rowid order, so a page of them costs only
that page: 14 -> 5 ms median, 22 -> 7 ms p95 for a count and a first page.
Every match is still found once; only the order differs from one bm25
ranking (test: ``test_items_named_by_the_words_come_first...``).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from node.store.models import SearchHit

#: At most this many words of a query are used (longer queries only slow things down).
MAX_TERMS = 12
_WORD = re.compile(r"\w+", re.UNICODE)
#: bm25 weights per column: title, body, author, collection.
_WEIGHTS = "10.0, 1.0, 4.0, 2.0"
#: The columns that name an item (the first tier).
_NAMING = "{title author collection}"

_FROM = ("FROM search_index JOIN search_docs AS d ON d.rowid = search_index.rowid "
         "WHERE search_index MATCH ? AND (d.expires_at IS NULL OR d.expires_at > ?) ")
_NAMED = ("SELECT d.kind, d.item_id, search_index.title, "
          f"snippet(search_index, 1, '', '', '…', 16), bm25(search_index, {_WEIGHTS}) AS score "
          + _FROM + "ORDER BY score, d.item_id LIMIT ? OFFSET ?")
_TEXT_ONLY = ("SELECT d.kind, d.item_id, search_index.title, "
              "snippet(search_index, 1, '', '', '…', 16), 0.0 " + _FROM
              + "ORDER BY search_index.rowid DESC LIMIT ? OFFSET ?")
_COUNT = ("SELECT count(*) FROM search_index JOIN search_docs AS d "
          "ON d.rowid = search_index.rowid WHERE search_index MATCH ? "
          "AND (d.expires_at IS NULL OR d.expires_at > ?)")


def _quoted(text: str) -> list[str] | None:
    terms = _WORD.findall(text or "")[:MAX_TERMS]
    if not terms:
        return None
    quoted = [f'"{term}"' for term in terms]
    quoted[-1] += "*"
    return quoted


def fts_query(text: str) -> str | None:
    """The FTS5 MATCH expression for ``text``, or None when it holds no word."""
    quoted = _quoted(text)
    return None if quoted is None else " ".join(quoted)


def tier_queries(text: str) -> tuple[str, str] | None:
    """The MATCH expressions of the two tiers for ``text``: (a word in the title,
    author or collection; the words only in the text), or None when it holds no word."""
    quoted = _quoted(text)
    if quoted is None:
        return None
    every = " ".join(quoted)
    return f"{_NAMING} : ({every})", f"({every}) NOT {_NAMING} : ({every})"


def _hits(rows: list[Any]) -> list[SearchHit]:
    return [SearchHit(kind=r[0], id=r[1], title=r[2], snippet=r[3], rank=-float(r[4]))
            for r in rows]


def search(conn: sqlite3.Connection, text: str, *, now: int, limit: int = 20,
           offset: int = 0) -> list[SearchHit]:
    """The best matches for ``text`` (expired items left out), most relevant first.

    The order is the two tiers' of the module's docstring. ``SearchHit.rank`` is
    the negated bm25 score of a named match (higher is more relevant), 0 for a
    mention.
    """
    tiers = tier_queries(text)
    limit, offset = max(0, limit), max(0, offset)
    if tiers is None or limit == 0:
        return []
    named, text_only = tiers
    rows = conn.execute(_NAMED, (named, now, limit, offset)).fetchall()
    if len(rows) == limit:
        return _hits(rows)
    # The page reaches past the named matches: the rest from the text-only ones.
    skip = 0 if rows else max(0, offset - int(conn.execute(_COUNT, (named, now)).fetchone()[0]))
    rows += conn.execute(_TEXT_ONLY, (text_only, now, limit - len(rows), skip)).fetchall()
    return _hits(rows)


def search_count(conn: sqlite3.Connection, text: str, *, now: int) -> int:
    """How many items match ``text`` (for pagination)."""
    query = fts_query(text)
    if query is None:
        return 0
    (count,) = conn.execute(_COUNT, (query, now)).fetchone()
    return int(count)
