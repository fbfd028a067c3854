"""Listings: all of them, by category, and one listing's page."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from node.store.models import CATEGORIES
from portal.db import found, get_store
from portal.paging import page_number, per_page, require_existing
from portal.residents.ended import ended_page, has_ended
from portal.residents.labels import CATEGORY_LABELS

bp = Blueprint("listings", __name__)


@bp.get("/listings/")
def index() -> str:
    """Every current listing, newest first, with links to each category."""
    page = get_store().listings(page=page_number(), per_page=per_page())
    require_existing(page)
    return render_template("residents/listings.html", page=page, category=None,
                           categories=CATEGORIES, labels=CATEGORY_LABELS)


@bp.get("/listings/<category>")
def category(category: str) -> str:
    """The current listings of one category."""
    if category not in CATEGORIES:
        abort(404)
    page = get_store().listings(category=category, page=page_number(), per_page=per_page())
    require_existing(page)
    return render_template("residents/listings.html", page=page, category=category,
                           categories=CATEGORIES, labels=CATEGORY_LABELS)


@bp.get("/listing/<listing_id>")
def show(listing_id: str) -> ResponseReturnValue:
    """One listing (404 when unknown or deleted; 410, with no details, once it has ended)."""
    listing = found(get_store().listing(listing_id))
    if has_ended(listing.expires_at):
        return ended_page(listing.title, _("This listing has ended."),
                          url_for("listings.category", category=listing.category),
                          _("More in %(category)s", category=CATEGORY_LABELS[listing.category]))
    return render_template("residents/listing.html", listing=listing, labels=CATEGORY_LABELS)
