"""Residents' reports of listings: kept on this node only, for its moderators.

A report is a resident saying "this listing breaks the house rules". It is
not signed or replicated (residents have no keys, and a report is a hint for
a moderator, not content): it waits in this node's database until a
moderator dismisses the reports of that listing, or the listing is gone.
Nothing about the reporter is kept.
"""

from __future__ import annotations

import sqlite3

from node.frozen import frozen

#: Why a resident may report a listing (the form offers these, in this order).
REPORT_REASONS = ("scam", "offensive", "outdated", "other")


@frozen
class ListingReports:
    """The reports waiting about one listing."""

    listing_id: str
    count: int
    reasons: tuple[str, ...]  #: each reason given, most frequent first
    details: tuple[str, ...]  #: the non-empty details, newest first
    last_at: int


class StoreReports:
    """Reports over the store's connection; needs ``_conn()`` from the store."""

    def _conn(self) -> sqlite3.Connection:  # pragma: no cover - provided by Store
        raise NotImplementedError

    def add_report(self, listing_id: str, reason: str, details: str, now: int) -> None:
        """Keep one report (already validated by the hub)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT INTO reports (listing_id, reason, details, reported_at) "
                         "VALUES (?, ?, ?, ?)", (listing_id, reason, details, now))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def reports(self) -> list[ListingReports]:
        """Waiting reports grouped by listing, the most reported first (deleted ones left out)."""
        conn = self._conn()
        rows = conn.execute(
            "SELECT r.listing_id, r.reason, r.details, r.reported_at FROM reports r "
            "JOIN listings l ON l.id = r.listing_id ORDER BY r.reported_at DESC").fetchall()
        grouped: dict[str, list[sqlite3.Row]] = {}
        for row in rows:
            grouped.setdefault(row[0], []).append(row)
        out = []
        for listing_id, group in grouped.items():
            reasons = [r[1] for r in group]
            ordered = tuple(sorted(set(reasons), key=lambda x: (-reasons.count(x), x)))
            out.append(ListingReports(listing_id, len(group), ordered,
                                      tuple(r[2] for r in group if r[2]), group[0][3]))
        return sorted(out, key=lambda r: (-r.count, -r.last_at))

    def dismiss_reports(self, listing_id: str) -> int:
        """Forget the reports of one listing; returns how many there were."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            count = conn.execute("DELETE FROM reports WHERE listing_id = ?",
                                 (listing_id,)).rowcount
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(count)
