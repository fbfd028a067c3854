"""Offline encyclopaedias (ZIM archives) read inside the hub.

URL scheme: ``/library/<item_id>/zim/<entry path>`` serves the archive's
entry at that path, so the relative links ZIM articles carry (``Water``,
``../I/pump.png``, ``style.css``) resolve to other entries of the same
archive, under the hub's own address. ``/library/<item_id>/zim/`` redirects
to the main page's path for the same reason; redirect entries are HTTP
redirects to their target's URL. Search (the archive's own full-text index,
and title suggestions) lives *beside* that tree, at
``/library/<item_id>/zim-search``, so that no entry path can shadow it.

Page chrome: an HTML article keeps its own markup and stylesheet; a thin bar
(back to the hub, "search this encyclopaedia") is inserted right after its
``<body>`` tag. Content security: the archive's own CSS (files and inline
``style`` attributes, which Wikipedia articles use for tables and infoboxes)
is allowed; **scripts are not** — the hub promises pages without JavaScript,
and an archive's script running on the hub's origin could read organisers'
pages. Articles of the common archives (Wikipedia, Wiktionary, Gutenberg,
WikiMed) read fine without it. Nothing outside the node is ever loaded.

Thread safety and memory: see :mod:`node.library.zim` (a lock per archive
around searches; at most ``library.zim_open_max`` archives open).
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from typing import IO, Any, cast

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from werkzeug.wrappers import Response as BaseResponse
from werkzeug.wsgi import FileWrapper

from node.errors import ValidationError
from node.library.zim import ArchiveCache, OpenArchive, ZimContent, ZimHit, ZimInfo
from node.store.models import LibraryItem, Page
from portal.db import found, get_blobs, get_store
from portal.paging import page_number, require_existing
from portal.searchcache import search_cache

__all__ = ["BODY_TAG", "ZIM_POLICY", "EncyclopaediaHits", "archive_cache", "bp",
           "encyclopaedia_hits", "hub_bar", "register_library", "zim_context"]

bp = Blueprint("zim", __name__)

EXTENSION = "meshhub.zim"
#: Where the newest ZIM items are kept for the global search (``app.extensions``).
NEWEST_EXTENSION = "meshhub.zim.newest"
#: The CSP of everything served from an archive (see the module docstring).
ZIM_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
              "font-src 'self' data:; media-src 'self'; script-src 'none'; object-src 'none'; "
              "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'")
#: Images, stylesheets and other resources of an archive never change for an item id.
ASSET_MAX_AGE = 24 * 3600
#: Bytes per piece when an entry other than an article is streamed.
STREAM_CHUNK_BYTES = 256 * 1024
#: Results per page of an encyclopaedia's own search.
RESULTS_PER_PAGE = 20
#: Title suggestions shown above full-text results.
SUGGESTIONS = 5
#: Archives and hits in the hub's global search.
GLOBAL_HITS_PER_ARCHIVE = 3
GLOBAL_HITS_MAX = 8
MAX_QUERY_CHARS = 200
BODY_TAG = re.compile(rb"<body\b[^>]*>", re.IGNORECASE)


def register_library(app: Flask) -> None:
    """Register the encyclopaedia and OPDS blueprints (called once by ``create_app``)."""
    from portal.residents import opds

    app.register_blueprint(bp)
    app.register_blueprint(opds.bp)


def archive_cache(app: Flask | None = None) -> ArchiveCache:
    """The app's cache of open archives (size ``library.zim_open_max``), made on first use."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    cache: ArchiveCache | None = app.extensions.get(EXTENSION)
    if cache is None:
        config = app.config["NODE_CONFIG"]
        cache = app.extensions.setdefault(EXTENSION, ArchiveCache(
            int(config.library.zim_open_max),
            cluster_cache_bytes=int(config.library.zim_cluster_cache_mb) * 1024 * 1024))
    return cache


def _archive_of(item: LibraryItem) -> OpenArchive | None:
    """The item's open archive; None when its file is missing here or cannot be read."""
    path = get_blobs().path(item.sha256)
    if item.media_type != "zim" or not path.is_file():
        return None
    try:
        return archive_cache().get(item.sha256, path)
    except ValidationError:
        current_app.logger.warning("library item %s: %s is not a readable ZIM archive",
                                   item.id, path)
        return None


def _item_and_archive(item_id: str) -> tuple[LibraryItem, OpenArchive]:
    item = found(get_store().library_item(item_id))
    archive = _archive_of(item)
    if archive is None:
        abort(404)
    return item, archive


def entry_url(item_id: str, entry_path: str) -> str:
    """The hub URL of an archive entry (path segments percent-encoded, slashes kept)."""
    return url_for("zim.entry", item_id=item_id, entry_path=entry_path)


@bp.get("/library/<item_id>/zim/")
def main_page(item_id: str) -> BaseResponse:
    """The archive's main page (a redirect, so that its relative links resolve)."""
    _item, archive = _item_and_archive(item_id)
    main = archive.main_path()
    if main is None:
        return redirect(url_for("zim.search", item_id=item_id))
    return redirect(entry_url(item_id, main))


@bp.get("/library/<item_id>/zim/<path:entry_path>")
def entry(item_id: str, entry_path: str) -> BaseResponse:
    """One entry of the archive with its own content type; redirects followed by the browser."""
    item, archive = _item_and_archive(item_id)
    found_entry = archive.entry(entry_path)
    if found_entry is None:
        abort(404)
    if not isinstance(found_entry, ZimContent):
        return redirect(entry_url(item_id, found_entry.target))
    mimetype = found_entry.mimetype or "application/octet-stream"
    is_html = mimetype.split(";")[0].strip().lower() == "text/html"
    if mimetype.startswith("text/") and "charset" not in mimetype:
        mimetype += "; charset=utf-8"  # ZIM text is UTF-8 by the format's definition
    if is_html:  # an article: small, and the hub's bar goes into it
        response = Response(_with_hub_bar(bytes(found_entry.content), item),
                            content_type=mimetype)
        response.headers["Content-Security-Policy"] = ZIM_POLICY
        return response
    # Anything else (images, audio, video) is streamed from libzim's own buffer in
    # pieces, never copied whole: a video entry may be hundreds of MB.
    size = len(found_entry.content)
    reader = cast(IO[bytes], _ViewReader(found_entry.content, found_entry.source))  # raw I/O
    stream = FileWrapper(reader, STREAM_CHUNK_BYTES)
    response = Response(stream, content_type=mimetype, direct_passthrough=True)
    response.content_length = size
    response.headers["Content-Security-Policy"] = ZIM_POLICY
    response.headers["Cache-Control"] = f"public, max-age={ASSET_MAX_AGE}"
    # An archive is stored by its SHA-256 and never changes: (archive, path) names the bytes.
    response.set_etag(hashlib.sha256(f"{item.sha256}/{entry_path}".encode()).hexdigest()[:32])
    return response.make_conditional(request, accept_ranges=True, complete_length=size)


class _ViewReader(io.RawIOBase):
    """A read-only, seekable file over a ``memoryview`` (no copy), for streaming it.

    ``keep`` is whatever must stay alive while the view is read (libzim's item).
    """

    def __init__(self, view: memoryview, keep: object) -> None:
        super().__init__()
        self._view = view.cast("B") if view.format != "B" else view
        self._keep = keep
        self._position = 0

    def readable(self) -> bool:
        """Always: that is what it is for."""
        return True

    def seekable(self) -> bool:
        """Always: a Range request starts anywhere."""
        return True

    def tell(self) -> int:
        """The position of the next read."""
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position (clamped at 0; beyond the end reads nothing)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, base[whence] + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        """Copy the next bytes into ``buffer``; 0 at the end."""
        piece = self._view[self._position:self._position + len(buffer)]
        memoryview(buffer).cast("B")[:len(piece)] = piece
        self._position += len(piece)
        return len(piece)

    def close(self) -> None:
        """Let go of the view and of what it kept alive."""
        self._view = memoryview(b"")
        self._keep = None
        super().close()


def _with_hub_bar(content: bytes, item: LibraryItem) -> bytes:
    """The article with the hub's bar inserted after ``<body ...>`` (unchanged if none)."""
    match = BODY_TAG.search(content)
    if match is None:
        return content
    return content[:match.end()] + hub_bar(item) + content[match.end():]


def hub_bar(item: LibraryItem) -> bytes:
    """The hub's bar for an article of ``item``, in this request's language."""
    locale = str(get_locale() or "en")
    return render_template("residents/zim_bar.html", item=item,
                           lang=locale.replace("_", "-")).encode("utf-8")


@bp.get("/library/<item_id>/zim-illustration.png")
def illustration(item_id: str) -> Response:
    """The archive's 48x48 illustration (its icon)."""
    _item, archive = _item_and_archive(item_id)
    png = archive.illustration()
    if png is None:
        abort(404)
    response = Response(png, mimetype="image/png")
    response.headers["Cache-Control"] = f"public, max-age={ASSET_MAX_AGE}"
    return response


@bp.get("/library/<item_id>/zim-search")
def search(item_id: str) -> str:
    """Search one encyclopaedia: its full-text index if it has one, and title suggestions."""
    item, archive = _item_and_archive(item_id)
    query = " ".join(request.args.get("q", "").split())[:MAX_QUERY_CHARS]
    number = page_number()
    info = archive.info
    suggestions: list[ZimHit] = []
    page: Page[ZimHit] = Page(items=(), page=number, per_page=RESULTS_PER_PAGE, total=0)
    if query:
        start = (number - 1) * RESULTS_PER_PAGE
        if info.has_fulltext_index:
            total, hits = archive.search(query, start=start, count=RESULTS_PER_PAGE)
            if number == 1:
                suggestions = archive.suggest(query, count=SUGGESTIONS)[1]
        else:
            total, hits = archive.suggest(query, start=start, count=RESULTS_PER_PAGE)
        page = Page(items=tuple(hits), page=number, per_page=RESULTS_PER_PAGE, total=total)
    require_existing(page)
    return render_template("residents/zim_search.html", item=item, info=info, query=query,
                           page=page, suggestions=suggestions, entry_url=entry_url)


# --- hooks for the library page and the hub's global search -----------------------------
def zim_context(item: LibraryItem) -> dict[str, object]:
    """Template values for a ZIM item's page: ``zim`` (ZimInfo) or ``zim_broken``."""
    if item.media_type != "zim" or not get_blobs().path(item.sha256).is_file():
        return {}
    archive = _archive_of(item)
    if archive is None:
        return {"zim_broken": True}
    try:
        info: ZimInfo = archive.info
    except ValidationError:
        return {"zim_broken": True}
    return {"zim": info, "zim_main": archive.main_path() is not None}


def _newest_archives(limit: int) -> tuple[LibraryItem, ...]:
    """The library's newest ZIM items (at most ``limit``), read once per content version.

    Every site search asks, whether or not the library holds an encyclopaedia, and
    finding them scans the library's rows (1 to 13 ms with 5,000 items on the lab
    machine): kept until any commit moves ``PRAGMA data_version``.
    """
    version = search_cache(current_app).content_version()
    kept = current_app.extensions.get(NEWEST_EXTENSION)
    if kept is not None and kept[:2] == (version, limit):
        return kept[2]
    items = tuple(get_store().library_items(media_type="zim", per_page=limit).items)
    current_app.extensions[NEWEST_EXTENSION] = (version, limit, items)
    return items


@dataclass(frozen=True)
class EncyclopaediaHits:
    """Title matches in one library archive, for the hub's global search."""

    item: LibraryItem
    total: int
    hits: tuple[ZimHit, ...]


def encyclopaedia_hits(query: str) -> list[EncyclopaediaHits]:
    """Title suggestions from the library's newest archives, at most :data:`GLOBAL_HITS_MAX`.

    Only as many archives as the open-archive cache holds are asked, so that a
    global search never makes the node open every archive it lists.
    """
    query = " ".join(query.split())[:MAX_QUERY_CHARS]
    if not query:
        return []
    limit = int(current_app.config["NODE_CONFIG"].library.zim_open_max)
    items = _newest_archives(limit)
    if not items:  # no encyclopaedia here: do not load libzim (about 5 MB) for nothing
        return []
    results: list[EncyclopaediaHits] = []
    left = GLOBAL_HITS_MAX
    for item in items:
        if left <= 0:
            break
        archive = _archive_of(item)
        if archive is None:
            continue
        total, hits = archive.suggest(query, count=min(GLOBAL_HITS_PER_ARCHIVE, left))
        if hits:
            results.append(EncyclopaediaHits(item, total, tuple(hits)))
            left -= len(hits)
    return results
