"""Reading ``?page=N`` strictly: a bad or out-of-range page is a 404, not page 1."""

from __future__ import annotations

from flask import abort, current_app, request

from node.store.models import Page

#: No listing will ever have this many pages; larger numbers are nonsense.
MAX_PAGE = 100_000


def page_number() -> int:
    """The requested page number (1 if absent); 404 when it is not a positive integer."""
    raw = request.args.get("page", "1")
    if not raw.isdigit() or len(raw) > 6:
        abort(404)
    number = int(raw)
    if not 1 <= number <= MAX_PAGE:
        abort(404)
    return number


def per_page() -> int:
    """Items per page, from ``portal.page_size``."""
    return int(current_app.config["PAGE_SIZE"])


def require_existing(page: Page[object]) -> None:
    """404 when a page beyond the last one was asked for (page 1 always exists)."""
    if page.page > page.pages:
        abort(404)
