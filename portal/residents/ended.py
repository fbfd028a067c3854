"""The page an expired listing or notice answers with: 410 Gone, its title, nothing else.

Lists and search already hide expired items; a bookmarked or shared link must
not keep showing them either, least of all a contact number or an URGENT
banner that no longer holds.
"""

from __future__ import annotations

from flask import render_template

from portal.db import get_store


def has_ended(expires_at: int | None) -> bool:
    """True when an item's expiry has passed (by the store's clock, which tests control)."""
    return expires_at is not None and expires_at <= int(get_store().clock())


def ended_page(title: str, message: str, back_url: str, back_label: str) -> tuple[str, int]:
    """The "ended" page, with status 410, for an item titled ``title``."""
    return render_template("residents/ended.html", title=title, message=message,
                           back_url=back_url, back_label=back_label), 410
