"""Search across listings, notices and the library, at a bookmarkable ``/search?q=``."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from node.store.models import Page, SearchHit
from portal.db import get_store
from portal.paging import page_number, per_page, require_existing
from portal.residents.labels import KIND_LABELS
from portal.residents.zim import encyclopaedia_hits
from portal.searchcache import search_cache

bp = Blueprint("search", __name__)

#: Longer queries are cut: nobody types more, and FTS work stays bounded.
MAX_QUERY_CHARS = 200


@bp.get("/search")
def results() -> str:
    """Search results for ``q``, labelled by kind, paginated."""
    query = " ".join(request.args.get("q", "").split())[:MAX_QUERY_CHARS]
    number, size = page_number(), per_page()
    page: Page[SearchHit] = Page(items=(), page=number, per_page=size, total=0)
    if query:
        store = get_store()

        def search() -> tuple[int, tuple[SearchHit, ...]]:
            total = store.search_count(query)
            return total, tuple(store.search(query, limit=size, offset=(number - 1) * size)
                                if total else ())

        total, hits = search_cache(current_app).answer(query, number, size, search)
        page = Page(items=hits, page=number, per_page=size, total=total)
        require_existing(page)
    elif number != 1:
        require_existing(page)
    zim_hits = encyclopaedia_hits(query) if query and number == 1 else []
    return render_template("residents/search.html", query=query, page=page,
                           kinds=KIND_LABELS, zim_hits=zim_hits)
