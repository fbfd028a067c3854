"""The home page: urgent notices first, newest listings, library highlights, search."""

from __future__ import annotations

from flask import Blueprint, render_template

from portal.db import get_store

bp = Blueprint("home", __name__)

HOME_NOTICES = 5
HOME_LISTINGS = 6
HOME_LIBRARY = 4


@bp.get("/")
def index() -> str:
    """What a resident sees first after joining the Wi-Fi."""
    store = get_store()
    notices = store.notices(limit=HOME_NOTICES)
    return render_template(
        "residents/home.html",
        urgent=[n for n in notices if n.urgent],
        notices=[n for n in notices if not n.urgent],
        listings=store.listings(page=1, per_page=HOME_LISTINGS),
        library=store.library_items(page=1, per_page=HOME_LIBRARY),
    )
