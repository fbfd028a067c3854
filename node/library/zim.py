"""ZIM archives (openZIM): checking them when added, and reading them for the portal.

A ZIM archive is one file holding a whole website (offline Wikipedia,
Wiktionary, Gutenberg ...): its entries by path, their MIME types, redirects,
metadata (title, language, an illustration) and usually a title index and a
Xapian full-text index. We read them with the maintained ``libzim`` bindings.

Threads. The portal serves from several waitress threads. Reading entries of
an :class:`libzim.reader.Archive` is thread-safe (libzim guards its caches),
but ``Searcher`` and ``SuggestionSearcher`` are not: Xapian's database objects
must not be used from two threads at once. Each :class:`OpenArchive` therefore
keeps one searcher of each kind, created on first use and only ever touched
under that archive's own lock; results are copied into plain Python values
before the lock is released. A lock per archive (rather than a searcher per
thread) keeps one Xapian database open per archive whatever the number of
threads, which is what bounds memory; searches of *different* archives still
run in parallel.

Memory. An open archive costs its dirent cache, its Xapian databases and
libzim's share of the (global, size-bounded) cluster cache; it does not grow
with the archive's size. :class:`ArchiveCache` keeps at most
``library.zim_open_max`` archives open, least recently used out, so memory is
driven by that number and not by how many archives the library lists.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.errors import ValidationError
from node.frozen import frozen
from node.messages import N_, Message, msg

if TYPE_CHECKING:
    from libzim.reader import Archive

__all__ = ["ArchiveCache", "OpenArchive", "ZimContent", "ZimHit", "ZimInfo", "ZimRedirect",
           "inspect_zim", "open_archive"]

#: Largest illustration read (the 48x48 PNG every ZIM should carry is a few KB).
ILLUSTRATION_MAX_BYTES = 256 * 1024
#: Searches return at most this many results per call, whatever is asked.
MAX_RESULTS = 100
_SEGMENT_BAD = re.compile(r"(^|/)\.{1,2}(/|$)")


@frozen
class ZimInfo:
    """What a ZIM archive says about itself (its ``M/`` metadata and counts)."""

    title: str
    language: str  #: as found, e.g. "eng" or "eng,fra" (ISO 639-3)
    description: str
    creator: str
    publisher: str
    article_count: int
    has_fulltext_index: bool
    has_title_index: bool
    has_illustration: bool


@frozen
class ZimContent:
    """One entry's bytes and MIME type, as stored in the archive.

    ``content`` is a view of the bytes libzim holds, not a copy: an entry may be
    a video of hundreds of MB, which the portal streams from it in pieces.
    ``bytes(content)`` copies it (fine for an article).
    """

    path: str
    title: str
    mimetype: str
    content: memoryview
    #: libzim's item, kept alive with the view it lent (never compared or shown).
    source: Any = field(default=None, compare=False, repr=False)


@frozen
class ZimRedirect:
    """An entry that redirects to another path of the same archive."""

    path: str
    target: str


@frozen
class ZimHit:
    """One search or suggestion result: an article's path and title."""

    path: str
    title: str


_HTTP_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"  # noqa: S105 - a pattern, not a secret
_QUOTED = r'"[^"\\\x00-\x1f\x7f]*"'
#: ``type/subtype`` with optional ``; name=value`` parameters (RFC 9110, section 8.3.1).
_PARAMETER = rf"[ \t]*;[ \t]*{_HTTP_TOKEN}=(?:{_HTTP_TOKEN}|{_QUOTED})"
_MIMETYPE = re.compile(rf"{_HTTP_TOKEN}/{_HTTP_TOKEN}(?:{_PARAMETER})*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _zim_problem(path: Path, why: Message) -> ValidationError:
    return ValidationError({"file": msg(N_(
        "%(file)s: %(why)s; this ZIM archive is damaged or incomplete (was the download or "
        "copy interrupted?). Download it again and compare its checksum."),
        file=path.name, why=why)})


def open_archive(path: str | Path) -> Archive:
    """Open a ZIM archive, or raise ValidationError({"file": ...}) saying it is damaged."""
    from libzim.reader import Archive

    path = Path(path)
    try:
        return Archive(path)
    except RuntimeError as exc:  # libzim: "Zim file(s) is of bad size or corrupted." etc.
        raise _zim_problem(path, msg(N_("libzim cannot open it (%(error)s)"),
                                     error=str(exc))) from None


def inspect_zim(path: str | Path, *, verify: bool = True) -> ZimInfo:
    """Open the archive, optionally verify its MD5 checksum, and read its metadata.

    ``verify`` reads the whole file (libzim's ``Archive.check()``): about a
    second per 200 MB on a Raspberry Pi 4. Uploads are bounded by
    ``portal.upload_max_mb`` and always verified; ``meshhub library add``
    verifies too unless told ``--no-verify`` for a very large archive whose
    checksum was already compared after download. Raises ValidationError for a
    truncated, corrupted or checksum-less-and-unreadable archive.
    """
    path = Path(path)
    archive = open_archive(path)
    try:
        if verify and archive.has_checksum and not archive.check():
            raise _zim_problem(path, msg(N_("its checksum does not match its content")))
        info = _read_info(archive)
        if archive.has_main_entry:
            archive.main_entry.get_item()  # follows redirects: a broken main page shows here
    except RuntimeError as exc:
        raise _zim_problem(path, msg(N_("libzim cannot read it (%(error)s)"),
                                     error=str(exc))) from None
    return info


def _read_info(archive: Archive) -> ZimInfo:
    return ZimInfo(title=_meta(archive, "Title"), language=_meta(archive, "Language"),
                   description=_meta(archive, "Description"),
                   creator=_meta(archive, "Creator"), publisher=_meta(archive, "Publisher"),
                   article_count=int(archive.article_count),
                   has_fulltext_index=bool(archive.has_fulltext_index),
                   has_title_index=bool(archive.has_title_index),
                   has_illustration=_has_illustration(archive))


def _meta(archive: Archive, key: str) -> str:
    try:
        raw = bytes(archive.get_metadata(key))
    except (RuntimeError, KeyError):
        return ""
    return _plain(raw.decode("utf-8", errors="replace"))


def _plain(text: str) -> str:
    """``text`` without control characters (CR, LF, NUL ...), each replaced by a space."""
    return _CONTROL.sub(" ", text).strip()


def safe_mimetype(value: str) -> str:
    """An archive's MIME type if it is one (``type/subtype`` and parameters), else binary.

    The archive is someone else's file: a type with a CR/LF, a quote out of
    place or no slash would otherwise reach the ``Content-Type`` header.
    """
    value = value.strip()
    if len(value) <= 200 and _MIMETYPE.fullmatch(value):
        return value
    return "application/octet-stream"


def _has_illustration(archive: Archive) -> bool:
    try:
        return bool(archive.has_illustration(48))
    except RuntimeError:
        return False


def valid_entry_path(entry_path: str) -> bool:
    """Whether a requested path can name an entry (no ``.``/``..`` segments, NULs, empties)."""
    return bool(entry_path) and "\x00" not in entry_path and "//" not in entry_path \
        and not _SEGMENT_BAD.search(entry_path) and len(entry_path) <= 1024


class OpenArchive:
    """One open archive, shared by every thread (see the module docstring)."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self._search_lock = threading.Lock()
        self._searcher: Any = None
        self._suggester: Any = None
        self._info: ZimInfo | None = None

    @classmethod
    def open(cls, path: str | Path) -> OpenArchive:
        """Open ``path`` (no checksum verification: that happened when it was added)."""
        return cls(open_archive(path))

    # --- reading (thread-safe in libzim) ----------------------------------------------
    @property
    def info(self) -> ZimInfo:
        """Metadata and counts (read once)."""
        if self._info is None:
            try:
                self._info = _read_info(self.archive)
            except RuntimeError as exc:
                raise _zim_problem(Path(self.archive.filename),
                                   msg(N_("unreadable (%(error)s)"), error=str(exc))) from None
        return self._info

    def main_path(self) -> str | None:
        """The path of the main page (redirects followed), or None when there is none."""
        if not self.archive.has_main_entry:
            return None
        try:
            entry = self.archive.main_entry
            for _ in range(50):
                if not entry.is_redirect:
                    return str(entry.path)
                entry = entry.get_redirect_entry()
        except RuntimeError:
            return None
        return None

    def entry(self, entry_path: str) -> ZimContent | ZimRedirect | None:
        """The entry at ``entry_path``: its content, where it redirects, or None."""
        if not valid_entry_path(entry_path):
            return None
        try:
            entry = self.archive.get_entry_by_path(entry_path)  # KeyError when absent
            if entry.is_redirect:
                return ZimRedirect(entry_path, str(entry.get_redirect_entry().path))
            item = entry.get_item()
            return ZimContent(entry_path, _plain(str(entry.title)),
                              safe_mimetype(str(item.mimetype)), item.content, source=item)
        except (RuntimeError, KeyError):
            return None

    def illustration(self) -> bytes | None:
        """The archive's 48x48 PNG illustration, if it has one."""
        if not _has_illustration(self.archive):
            return None
        try:
            item = self.archive.get_illustration_item(48)
            if item.size > ILLUSTRATION_MAX_BYTES:
                return None
            return bytes(item.content)
        except (RuntimeError, KeyError):
            return None

    def _title(self, entry_path: str) -> str:
        try:
            return str(self.archive.get_entry_by_path(entry_path).title) or entry_path
        except (RuntimeError, KeyError):
            return entry_path

    # --- searching (not thread-safe in libzim: under the archive's lock) ---------------
    def search(self, query: str, *, start: int = 0, count: int = 20) -> tuple[int, list[ZimHit]]:
        """Full-text search in the archive's own index: (estimated total, hits).

        (0, []) when the archive has no full-text index or the query is empty.
        """
        query = query.strip()
        if not query or not self.archive.has_fulltext_index:
            return 0, []
        from libzim.search import Query, Searcher

        count = max(0, min(count, MAX_RESULTS))
        with self._search_lock:
            try:
                if self._searcher is None:
                    self._searcher = Searcher(self.archive)
                search = self._searcher.search(Query().set_query(query))
                total = int(search.getEstimatedMatches())
                paths = [str(p) for p in search.getResults(max(0, start), count)]
            except RuntimeError:
                return 0, []
        return total, [ZimHit(p, self._title(p)) for p in paths]

    def suggest(self, query: str, *, start: int = 0, count: int = 10
                ) -> tuple[int, list[ZimHit]]:
        """Articles whose titles match ``query`` (the title index): (estimated total, hits)."""
        query = query.strip()
        if not query:
            return 0, []
        from libzim.suggestion import SuggestionSearcher

        count = max(0, min(count, MAX_RESULTS))
        with self._search_lock:
            try:
                if self._suggester is None:
                    self._suggester = SuggestionSearcher(self.archive)
                suggestion = self._suggester.suggest(query)
                total = int(suggestion.getEstimatedMatches())
                paths = [str(p) for p in suggestion.getResults(max(0, start), count)]
            except RuntimeError:
                return 0, []
        return total, [ZimHit(p, self._title(p)) for p in paths]


class ArchiveCache:
    """At most ``max_open`` open archives, least recently used closed first (thread-safe).

    Keys are the archives' SHA-256 (a library file's identity). An archive
    dropped from the cache while a request still uses it stays valid until
    that request lets go of it (reference counting), so eviction never breaks
    a page being served.
    """

    def __init__(self, max_open: int = 4, *, cluster_cache_bytes: int | None = None) -> None:
        if max_open < 1:
            raise ValueError("max_open must be at least 1")
        if cluster_cache_bytes is not None:
            import libzim

            # One cache for the whole process (libzim >= 9), whatever the number of archives.
            libzim.set_cluster_cache_max_size(cluster_cache_bytes)
        self.max_open = max_open
        self._open: OrderedDict[str, OpenArchive] = OrderedDict()
        self._lock = threading.Lock()
        self._opening: dict[str, threading.Lock] = {}
        self.opened = 0  #: archives opened so far (a cache miss each)

    def get(self, key: str, path: str | Path) -> OpenArchive:
        """The open archive for ``key`` (opening ``path`` on a miss); ValidationError if damaged."""
        with self._lock:
            found = self._open.get(key)
            if found is not None:
                self._open.move_to_end(key)
                return found
            gate = self._opening.setdefault(key, threading.Lock())
        with gate:  # two threads missing the same archive open it once
            with self._lock:
                found = self._open.get(key)
                if found is not None:
                    self._open.move_to_end(key)
                    return found
            try:
                archive = OpenArchive.open(path)
            finally:
                with self._lock:
                    self._opening.pop(key, None)
            with self._lock:
                self._open[key] = archive
                self.opened += 1
                while len(self._open) > self.max_open:
                    self._open.popitem(last=False)
        return archive

    def discard(self, key: str) -> None:
        """Forget one archive (its file was deleted or replaced)."""
        with self._lock:
            self._open.pop(key, None)

    def clear(self) -> None:
        """Forget every open archive (idempotent)."""
        with self._lock:
            self._open.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def keys(self) -> list[str]:
        """The keys of the open archives, least recently used first."""
        with self._lock:
            return list(self._open)
