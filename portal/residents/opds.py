"""The library as an OPDS 1.2 catalogue, for e-reader apps (KOReader, Thorium, Aldiko ...).

OPDS is Atom (RFC 4287) with a few link relations. ``/opds`` is the root
*navigation* feed (new items, by kind, by collection); the feeds it leads to
are *acquisition* feeds whose entries carry an
``http://opds-spec.org/acquisition/open-access`` link to the item's existing
download route, typed with the file's MIME type (``application/epub+zip``,
``application/pdf`` ...). Search follows OpenSearch 1.1: a description
document at ``/opds/opensearch.xml`` whose template points at
``/opds/search?q={searchTerms}``. Long feeds are paged with ``first``,
``previous``, ``next`` and ``last`` links (``?page=N``). Every link is an
absolute URL on the address the reader used to reach the hub.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from node.store.models import MEDIA_TYPES, LibraryItem, Page
from portal.db import get_store
from portal.paging import page_number, require_existing
from portal.residents.labels import MEDIA_LABELS

__all__ = ["ACQUISITION", "NAVIGATION", "bp"]

bp = Blueprint("opds", __name__, url_prefix="/opds")

NAVIGATION = "application/atom+xml;profile=opds-catalog;kind=navigation"
ACQUISITION = "application/atom+xml;profile=opds-catalog;kind=acquisition"
OPENSEARCH = "application/opensearchdescription+xml"
#: Library hits looked at for one OPDS search (the hub's index ranks them).
SEARCH_MAX = 200
MAX_QUERY_CHARS = 200


@dataclass(frozen=True)
class NavEntry:
    """One entry of a navigation feed: a link to another feed."""

    id: str
    title: str
    summary: str
    href: str
    kind: str  #: NAVIGATION or ACQUISITION


def _feed_response(template_name: str, content_type: str, **values: object) -> Response:
    body = render_template(template_name, **values)
    return Response(body, content_type=f"{content_type};charset=utf-8")


def _per_page() -> int:
    return int(current_app.config["PAGE_SIZE"])


def _updated(items: Sequence[LibraryItem]) -> int:
    return max((i.updated_at for i in items), default=int(time.time()))


@bp.get("")
def root() -> Response:
    """The root navigation feed."""
    store = get_store()
    entries = [
        NavEntry("urn:meshhub:opds:new", _("New in the library"),
                 _("Everything in the library, newest first."),
                 url_for("opds.new", _external=True), ACQUISITION),
        NavEntry("urn:meshhub:opds:kinds", _("By kind"),
                 _("E-books, documents, audio, video and more."),
                 url_for("opds.kinds", _external=True), NAVIGATION),
    ]
    if store.collections():
        entries.append(NavEntry("urn:meshhub:opds:collections", _("By collection"),
                                _("Items the organisers have put together."),
                                url_for("opds.collections", _external=True), NAVIGATION))
    newest = store.library_items(page=1, per_page=1).items
    return _feed_response("opds/navigation.xml", NAVIGATION, feed_id="urn:meshhub:opds:root",
                          title=_("Library"), entries=entries, updated=_updated(newest),
                          self_url=url_for("opds.root", _external=True))


@bp.get("/kinds")
def kinds() -> Response:
    """Navigation: one acquisition feed per kind of item the library holds."""
    store = get_store()
    entries = []
    for media_type in MEDIA_TYPES:
        count = store.library_items(media_type=media_type, per_page=1).total
        if count:
            entries.append(NavEntry(f"urn:meshhub:opds:kind:{media_type}",
                                    str(MEDIA_LABELS[media_type]),
                                    ngettext("%(num)d item", "%(num)d items", count),
                                    url_for("opds.kind", media_type=media_type, _external=True),
                                    ACQUISITION))
    newest = store.library_items(page=1, per_page=1).items
    return _feed_response("opds/navigation.xml", NAVIGATION, feed_id="urn:meshhub:opds:kinds",
                          title=_("By kind"), entries=entries, updated=_updated(newest),
                          self_url=url_for("opds.kinds", _external=True))


@bp.get("/collections")
def collections() -> Response:
    """Navigation: one acquisition feed per collection."""
    store = get_store()
    entries = [NavEntry(f"urn:meshhub:opds:collection:{name}", name,
                        ngettext("%(num)d item", "%(num)d items", count),
                        url_for("opds.collection", name=name, _external=True), ACQUISITION)
               for name, count in store.collections()]
    newest = store.library_items(page=1, per_page=1).items
    return _feed_response("opds/navigation.xml", NAVIGATION,
                          feed_id="urn:meshhub:opds:collections", title=_("By collection"),
                          entries=entries, updated=_updated(newest),
                          self_url=url_for("opds.collections", _external=True))


def _acquisition(page: Page[LibraryItem], *, feed_id: str, title: str, endpoint: str,
                 **args: str) -> Response:
    require_existing(page)

    def at(number: int) -> str:
        return url_for(endpoint, page=number, _external=True, **args) if number > 1 \
            else url_for(endpoint, _external=True, **args)

    paging = {"first": at(1), "last": at(page.pages),
              "previous": at(page.page - 1) if page.has_prev else None,
              "next": at(page.page + 1) if page.has_next else None}
    return _feed_response("opds/acquisition.xml", ACQUISITION, feed_id=feed_id, title=title,
                          page=page, paging=paging, self_url=at(page.page),
                          updated=_updated(page.items))


@bp.get("/new")
def new() -> Response:
    """Acquisition: every item, newest first."""
    page = get_store().library_items(page=page_number(), per_page=_per_page())
    return _acquisition(page, feed_id="urn:meshhub:opds:new", title=_("New in the library"),
                        endpoint="opds.new")


@bp.get("/kind/<media_type>")
def kind(media_type: str) -> Response:
    """Acquisition: items of one kind (epub, pdf, audio ...)."""
    if media_type not in MEDIA_TYPES:
        abort(404)
    page = get_store().library_items(media_type=media_type, page=page_number(),
                                     per_page=_per_page())
    return _acquisition(page, feed_id=f"urn:meshhub:opds:kind:{media_type}",
                        title=str(MEDIA_LABELS[media_type]), endpoint="opds.kind",
                        media_type=media_type)


@bp.get("/collection/<path:name>")
def collection(name: str) -> Response:
    """Acquisition: the items of one collection."""
    store = get_store()
    if name not in {n for n, _count in store.collections()}:
        abort(404)
    page = store.library_items(collection=name, page=page_number(), per_page=_per_page())
    return _acquisition(page, feed_id=f"urn:meshhub:opds:collection:{name}", title=name,
                        endpoint="opds.collection", name=name)


@bp.get("/opensearch.xml")
def opensearch() -> Response:
    """The OpenSearch description document that tells readers how to search."""
    template = url_for("opds.search", _external=True) + "?q={searchTerms}"
    return _feed_response("opds/opensearch.xml", OPENSEARCH, search_url=template,
                          acquisition=ACQUISITION)


@bp.get("/search")
def search() -> Response:
    """Acquisition: library items matching ``q`` (the hub's own full-text index)."""
    query = " ".join(request.args.get("q", "").split())[:MAX_QUERY_CHARS]
    number, size = page_number(), _per_page()
    store = get_store()
    items: list[LibraryItem] = []
    if query:
        for hit in store.search(query, limit=SEARCH_MAX):
            if hit.kind == "library":
                item = store.library_item(hit.id)
                if item is not None:
                    items.append(item)
    start = (number - 1) * size
    page = Page(items=tuple(items[start:start + size]), page=number, per_page=size,
                total=len(items))
    return _acquisition(page, feed_id=f"urn:meshhub:opds:search:{query}",
                        title=_("Search: %(query)s", query=query), endpoint="opds.search",
                        q=query)
