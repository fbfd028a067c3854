"""The library: browse by collection and type, item pages, downloads and inline viewing.

Files are served with ``send_file(conditional=True)``, which answers HTTP
Range requests (206, 416) and conditional GETs; in production nginx serves
the same bytes (docs/serving.md).
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request, send_file

from node.store.models import MEDIA_TYPES, LibraryItem
from portal.db import found, get_blobs, get_store
from portal.paging import page_number, per_page, require_existing
from portal.residents.labels import MEDIA_LABELS
from portal.residents.zim import zim_context
from portal.security import EMBEDDABLE_POLICY

bp = Blueprint("library", __name__)

#: Media types the browser can show by itself (PDF viewer, <audio>, <video>, <img>).
INLINE_TYPES = frozenset({"pdf", "audio", "video", "image"})


@bp.get("/library/")
def index() -> str:
    """Library items, optionally narrowed to one collection and/or media type."""
    store = get_store()
    collection = request.args.get("collection") or None
    media_type = request.args.get("type") or None
    collections = store.collections()
    if media_type is not None and media_type not in MEDIA_TYPES:
        abort(404)
    if collection is not None and collection not in {name for name, _ in collections}:
        abort(404)
    page = store.library_items(collection=collection, media_type=media_type,
                               page=page_number(), per_page=per_page())
    require_existing(page)
    counts = store.media_type_counts(collection)
    return render_template("residents/library.html", page=page, collections=collections,
                           collection=collection, media_type=media_type,
                           media_types=[(t, counts[t]) for t in MEDIA_TYPES if t in counts],
                           labels=MEDIA_LABELS)


@bp.get("/library/<item_id>")
def show(item_id: str) -> str:
    """One item: its description, the browser's own viewer where it has one, a download."""
    item = found(get_store().library_item(item_id))
    available = get_blobs().path(item.sha256).is_file()
    return render_template("residents/library_item.html", item=item, available=available,
                           inline=item.media_type in INLINE_TYPES, labels=MEDIA_LABELS,
                           **zim_context(item))


@bp.get("/library/<item_id>/download")
def download(item_id: str) -> Response:
    """The file as an attachment, with its safe file name and Range support."""
    return _send(found(get_store().library_item(item_id)), attachment=True)


@bp.get("/library/<item_id>/view")
def view(item_id: str) -> Response:
    """The file shown inline (in an ``<object>``, ``<audio>``, ``<video>`` or ``<img>``)."""
    item = found(get_store().library_item(item_id))
    if item.media_type not in INLINE_TYPES:
        abort(404)
    response = _send(item, attachment=False)
    response.headers["Content-Security-Policy"] = EMBEDDABLE_POLICY
    return response


def _send(item: LibraryItem, *, attachment: bool) -> Response:
    path = get_blobs().path(item.sha256)
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype=item.mime, as_attachment=attachment,
                     download_name=item.filename, conditional=True, max_age=3600)
