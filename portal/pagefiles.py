"""Residents' pages rendered once per change and written as files, for nginx to send.

Most of what residents read (home, listings, notices, library items, category
and library pages, the fixed pages) changes only when an entry arrives, an item
expires, or the day turns ("yesterday" becomes "2 days ago"). Rendering such a
page costs milliseconds of Python; sending a file costs nginx microseconds. So
the served portal keeps, under ``data_dir/pages``, the exact bytes it would
answer to an anonymous reader, one file per page and offered language
(``<lang><path>@index.html``, ``@page-N.html`` for ``?page=N``, and a ``.gz``
beside each for nginx's ``gzip_static``). nginx sends such a file when the
request is one the file answers exactly (``images/nginx/meshhub.conf``): a GET
or HEAD from nobody signed in, to this node's own name, with no query or only
``page=N``, in a language nginx can tell the same way the portal does
(:func:`portal.i18n.negotiate`). A search or another plain query of these
pages is kept as a file after its first answer (:class:`LazyFiles`, until the
next change). Everything else (forms, organisers, captive probes, odd headers)
goes to the portal as before.

A file exists only while it is true:

* **Changes** are found by comparing a snapshot of every listing, notice and
  library item (a digest of its row, its category, whether it is live, whether
  its file is on disk) with the previous one, whenever SQLite's
  ``data_version`` moves (any commit by any process: a post, replication, the
  CLI) and every :data:`RESCAN_SECONDS` (a library file arriving on disk). The
  pages a changed item appears on are deleted at once and rendered again:
  its own page, home, and the lists it is or was in (every page of them, since
  one new item shifts them all).
* **Expiry**: an item counts as gone :data:`MARGIN_SECONDS` before it expires,
  so its pages are deleted before the moment and rendered again after it.
* **The day**: relative dates change at midnight (node's time zone): every file
  is deleted just before and the set rendered again after it.
* **Code or settings**: a fingerprint of the portal's code, templates,
  translations, static files and node.toml; when it differs at start, every
  file is deleted and rendered again.
* A page rendered while a commit landed is thrown away, not written.

What is not rendered yet is simply answered by the portal, so correctness never
waits for the renderer; ``.state.json`` tells how far it got (bench/street.py
waits for ``complete``). The manifest (``.manifest.json``, written atomically)
keeps the snapshot and what is still to render, so a restart continues where it
stopped: a cold start serves every file at once.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from node.agent_app import read_answer
from node.atomic import atomic_write

if TYPE_CHECKING:
    from portal.rendering import PendingRenders

log = logging.getLogger(__name__)

#: Folder under the node's data_dir.
PAGES_DIR_NAME = "pages"
MANIFEST_NAME = ".manifest.json"
STATE_NAME = ".state.json"
#: How often the renderer looks at SQLite's data_version (seconds).
POLL_SECONDS = 0.2
#: How often the whole snapshot is compared even without a commit (files on disk).
RESCAN_SECONDS = 30.0
#: During a long build, the manifest is saved at most this often (seconds).
SAVE_SECONDS = 10.0
#: An item counts as gone this long before its expiry; the day turns this early too.
MARGIN_SECONDS = 2.0
#: A path segment that may become part of a file name.
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Offered language codes nginx can choose by (see portal.nginx.language_maps).
SIMPLE_LANGUAGE = re.compile(r"[a-z]{2,3}")
_FIXED = ("/rules", "/privacy", "/contact", "/about")
#: A query string whose answer may be kept lazily as a file (nginx's ``$meshhub_page_variant``
#: looks for ``@a-<query>.html``): searches, a library collection, any other plain query.
LAZY_ARGS = r"[A-Za-z0-9=&+%._-]{1,100}"
#: ``page=N``: the renderer's own ``@page-N`` files, never kept lazily.
PAGE_ARGS = r"page=(?:[2-9]|[1-9][0-9]{1,4})"
#: Lazily kept answers at most (a page and its .gz, ~25 KB each); the oldest go first.
LAZY_MAX = 1000
#: A kept search answer is deleted this long after it was written, and a restart forgets
#: them all: what residents searched for stays on the node no longer than nginx's own cache
#: keeps an entry (``inactive=10m``), and a neighbour cannot learn by timing days later
#: whether someone here searched for a word. Other kept answers (collections) stay until
#: the next change.
SEARCH_KEEP_SECONDS = 600.0
_LAZY = re.compile(LAZY_ARGS)
_PAGE = re.compile(PAGE_ARGS)
#: The pages whose files a change deletes (:func:`pages_of`): only their answers are kept lazily.
_LAZY_PATH = re.compile(r"/(?:search|rules|privacy|contact|about|(?:listings|notices|library)/"
                        r"(?:[A-Za-z0-9][A-Za-z0-9._-]{0,127})?|listing/[A-Za-z0-9][A-Za-z0-9._-]"
                        r"{0,127})?")
_HTML_LANG = re.compile(rb'<html[^>]*\slang="([a-z]{2,3})"')


@dataclass(frozen=True)
class Item:
    """One listing, notice or library item as far as pages depend on it."""

    digest: str
    group: str  # a listing's category ("" otherwise)
    live: bool  # shown in lists and on its own page


def file_name(lang: str, path: str, page: int = 1) -> str:
    """The file (relative to the pages folder) holding ``path?page=N`` in ``lang``."""
    return f"{lang}{path}@{'index' if page == 1 else f'page-{page}'}.html"


def lazy_name(lang: str, path: str, args: str) -> str:
    """The file (relative to the pages folder) keeping ``path?args`` in ``lang``."""
    return f"{lang}{path}@a-{args}.html"


#: A path whose file name is the path itself: safe segments, no empty one.
_FILE_PATH = re.compile(r"/(?:[A-Za-z0-9][A-Za-z0-9._-]{0,127}/)*(?:[A-Za-z0-9][A-Za-z0-9._-]"
                        r"{0,127})?")


def file_for(lang: str, path: str, args: str, languages: list[str]) -> str | None:
    """The file (relative to the pages folder) that would answer ``path?args`` in ``lang``,
    as nginx's maps name it (images/nginx/meshhub.conf): no query, ``page=N`` or a plain
    query kept lazily; None when no file could (another query, an odd path or language)."""
    if lang not in languages or not SIMPLE_LANGUAGE.fullmatch(lang) \
            or not _FILE_PATH.fullmatch(path):
        return None
    if not args:
        return file_name(lang, path)
    if _PAGE.fullmatch(args):
        return file_name(lang, path, int(args.partition("=")[2]))
    return lazy_name(lang, path, args) if keepable(path, args) else None


def keepable(path: str, args: str) -> bool:
    """Whether the answer to ``path?args`` may be kept as a file: a plain query (not
    ``page=N``, the renderer's own) of a page whose files a change deletes."""
    return bool(_LAZY.fullmatch(args) and not _PAGE.fullmatch(args)
                and _LAZY_PATH.fullmatch(path))


def _is_search(name: str) -> bool:
    """Whether the kept answer ``name`` (:func:`lazy_name`) is a search's."""
    return name.partition("/")[2].startswith("search@a-")


def pages_dir(config: Any) -> Path:
    """Where a node keeps its page files."""
    return Path(config.data_dir) / PAGES_DIR_NAME


def enabled(config: Any) -> bool:
    """Whether this node renders page files: behind nginx, caching on, simple language codes."""
    portal = config.portal
    return (bool(portal.behind_proxy) and int(portal.cache_seconds) > 0
            and all(SIMPLE_LANGUAGE.fullmatch(code) for code in portal.languages))


def snapshot(conn: sqlite3.Connection, now: float,
             blob_exists: Callable[[str], bool]) -> dict[str, Item]:
    """Every listing (``l:``), notice (``n:``) and library item (``b:``) as pages see it."""
    items: dict[str, Item] = {}
    for table, prefix in (("listings", "l"), ("notices", "n"), ("library_items", "b")):
        cursor = conn.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed names
        names = [column[0] for column in cursor.description]
        for row in cursor:
            record = dict(zip(names, row, strict=True))
            expires = record.get("expires_at")
            live = expires is None or expires > now + MARGIN_SECONDS
            extra = ""
            if prefix == "b":
                extra = "1" if blob_exists(str(record["sha256"])) else "0"
            digest = hashlib.blake2b(repr((row, extra)).encode(), digest_size=12).hexdigest()
            items[f"{prefix}:{record['id']}"] = Item(
                digest, str(record.get("category") or "") if prefix == "l" else "", live)
    return items


def next_expiry(conn: sqlite3.Connection, now: float) -> float | None:
    """The next moment an item stops counting as live (expiry minus the margin)."""
    row = conn.execute("SELECT min(expires_at) FROM search_docs WHERE expires_at > ?",
                       (now + MARGIN_SECONDS,)).fetchone()
    return None if row[0] is None else float(row[0]) - MARGIN_SECONDS


def families(items: dict[str, Item], page_size: int) -> dict[str, int]:
    """Each paged list and its number of pages (at least 1) for these items."""
    counts: dict[str, int] = {"/listings/": 0, "/library/": 0}
    for key, item in items.items():
        if not item.live:
            continue
        if key.startswith("l:"):
            counts["/listings/"] += 1
            family = f"/listings/{item.group}"
            counts[family] = counts.get(family, 0) + 1
        elif key.startswith("b:"):
            counts["/library/"] += 1
    return {family: max(1, -(-count // page_size)) for family, count in counts.items()}


def pages_of(key: str, item: Item | None, old: Item | None) -> set[str]:
    """The pages (paths; a list stands for all its pages) that item ``key`` appears on."""
    kind, _, ident = key.partition(":")
    if kind == "l":
        groups = {i.group for i in (item, old) if i is not None}
        return {"/", "/search", "/listings/", f"/listing/{ident}",
                *(f"/listings/{g}" for g in groups)}
    if kind == "n":
        return {"/", "/search", "/notices/", f"/notices/{ident}"}
    return {"/", "/search", "/library/", f"/library/{ident}"}


def all_pages(items: dict[str, Item]) -> list[str]:
    """Every page path worth rendering, the most asked-for first."""
    first = ["/", "/listings/", "/notices/", "/library/", "/search", *_FIXED]
    lists = sorted({f"/listings/{i.group}" for k, i in items.items()
                    if k.startswith("l:") and i.live})
    singles = [("/listing/" if k[0] == "l" else "/notices/" if k[0] == "n" else "/library/")
               + k[2:] for k, i in items.items() if i.live]
    return first + lists + singles


class Renderer:
    """Keeps the page files of one portal app true; runs in a thread of the served portal."""

    def __init__(self, app: Any, config: Any, *, root: Path | None = None,
                 pending: PendingRenders | None = None) -> None:
        """Render ``app``'s pages for the node ``config`` into ``root`` (its pages folder);
        ``pending``: renders replicated posts' Markdown first at each look (see there)."""
        from portal.db import services

        self.app = app
        self.config = config
        self.root = root or pages_dir(config)
        self.languages = [str(code) for code in config.portal.languages]
        self.page_size = int(config.portal.page_size)
        store = services(app).store
        self.clock: Callable[[], float] = store.clock
        self.db_path = Path(store.path)
        self.blobs_root = Path(services(app).hub.blobs.root)
        self.zone = _zone(app.config.get("BABEL_DEFAULT_TIMEZONE", "UTC"))
        self.items: dict[str, Item] = {}
        self.queue: dict[str, float] = {}  # path -> not before (store clock)
        self.rendered = 0
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._version = -1
        self._next_scan = 0.0
        self._day = ""
        self._state_mark: tuple[int, int] | None = None
        self._saved = 0.0
        # Lazily kept answers (keep()): a deletion moves the generation, under the lock,
        # so that an answer rendered before a change is never written after it.
        self._lock = threading.RLock()
        self.generation = 0
        self.lazy: OrderedDict[str, float] = OrderedDict()  # name -> when kept (monotonic)
        self._next_forget = 0.0
        self.ready = False
        self.pending = pending
        #: When (time.monotonic()) the last finished look began: the files then held
        #: every commit made before that moment (portal.signed_files relies on it).
        self.looked = float("-inf")
        #: An expiring item's pages are deleted this long before the moment.
        self.margin = MARGIN_SECONDS
        from portal.welcome_file import WelcomeFiles

        #: The welcome page for every new phone, its CSRF token made by nginx.
        self.welcome = WelcomeFiles(self)

    # --- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        """Run in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="pagefiles", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (files stay: they are true, and the manifest says so)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self) -> None:
        try:
            self.resume()
            self.warm()
            while not self._stop.is_set():
                self.step()
                if not self._due():
                    self._stop.wait(POLL_SECONDS)
        except Exception:
            log.exception("page files stopped; the portal answers every page itself")
            with contextlib.suppress(OSError):
                self._clear()
            if self.pending is not None and not self._stop.is_set():
                self.pending.start()  # replicated posts are still rendered, on its own

    # --- the work ---------------------------------------------------------------
    def resume(self) -> None:
        """Take up the manifest: continue its work, or start afresh if code or day differ."""
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = self._read_manifest()
        now = self.clock()
        self._day = self._day_of(now)
        why = ("no manifest" if manifest is None else
               "code or settings changed" if manifest.get("code") != self._fingerprint() else
               "the day turned" if manifest.get("day") != self._day else "")
        if why or manifest is None:
            log.warning("page files: rendering every page again (%s)", why)
            self._clear()
            self.items = {}
            self.queue = {}
        else:
            self.items = {key: Item(*value) for key, value in manifest["items"].items()}
            self.queue = {str(path): float(when) for path, when in manifest["queue"]}
        self._version = -1
        self._next_scan = 0.0
        if not self.items and not self.queue:
            self.items = snapshot(self._db(), now, self._blob_exists)
            self.queue = dict.fromkeys(all_pages(self.items), 0.0)
            self._save()
        self.step(render=False)
        with self._lock:  # answers kept by an earlier run, still true (the look above
            self.lazy.clear()  # deleted what changed meanwhile): tracked again, oldest first
            kept = []
            for folder, _, names in os.walk(self.root):
                for name in names:
                    if "@a-" in name and name.endswith(".html"):
                        full = os.path.join(folder, name)
                        with contextlib.suppress(FileNotFoundError):
                            kept.append((os.stat(full).st_mtime_ns,
                                         os.path.relpath(full, self.root)))
            for _, name in sorted(kept):
                if _is_search(name):  # searches are not kept across a restart
                    self._unlink(name)
                else:
                    self.lazy[name] = 0.0
            self._evict()
            self.ready = True

    def warm(self) -> None:
        """Render one page of each kind, and home in every language, and throw them away.

        After a start, files answer every page at once; what still reaches the
        portal (a new search, an organiser, a page not rendered yet) would pay for
        compiling its templates and loading its language first: about 40 ms for the
        first page of a process and 5-20 ms for each new kind, here, against 1-5 ms
        warm. Done in this thread, before any rendering.
        """
        started = time.monotonic()
        paths = [("/", ""), ("/listings/", ""), ("/notices/", ""), ("/library/", ""),
                 ("/search", "q=a"), ("/about", "")]
        for kind, prefix in (("l:", "/listing/"), ("n:", "/notices/"), ("b:", "/library/")):
            key = next((k for k, i in self.items.items() if k.startswith(kind) and i.live), None)
            if key is not None:
                paths.append((prefix + key[2:], ""))
        try:
            for path, query in paths:
                self.render(path, 1, self.languages[0], query=query)
            for lang in self.languages[1:]:
                self.render("/", 1, lang)
        except Exception:  # a warm-up only: the pages themselves still render on demand
            log.warning("page files: warming up failed", exc_info=True)
        log.info("page files: warmed up in %.2f s", time.monotonic() - started)

    def keep(self, generation: int, lang: str, path: str, args: str, body: bytes) -> bool:
        """Write the answer to ``path?args`` in ``lang`` for nginx, if nothing changed since.

        ``generation`` is :attr:`generation` read before the answer was rendered:
        if any file was deleted since (a change), the answer may be stale and
        is dropped. At most :data:`LAZY_MAX` such files; the oldest go first.
        """
        if lang not in self.languages or not keepable(path, args):
            return False
        with self._lock:
            if not self.ready or self._stop.is_set() or generation != self.generation:
                return False
            name = lazy_name(lang, path, args)
            self._write(name, body)
            self.lazy[name] = time.monotonic()
            self.lazy.move_to_end(name)
            self._evict()
        return True

    def _evict(self) -> None:
        """Delete the oldest kept answers beyond :data:`LAZY_MAX` (lock held)."""
        while len(self.lazy) > LAZY_MAX:
            old, _ = self.lazy.popitem(last=False)
            self._unlink(old)

    def forget_searches(self, now: float) -> int:
        """Delete the search answers kept more than :data:`SEARCH_KEEP_SECONDS` before
        ``now`` (monotonic); returns how many."""
        with self._lock:
            old = [name for name, kept in self.lazy.items()
                   if kept <= now - SEARCH_KEEP_SECONDS and _is_search(name)]
            for name in old:
                del self.lazy[name]
                self._unlink(name)
        return len(old)

    def _unlink(self, name: str) -> None:
        for suffix in ("", ".gz"):
            with contextlib.suppress(FileNotFoundError):
                (self.root / (name + suffix)).unlink()

    def step(self, *, render: bool = True, budget: float = 0.5) -> None:
        """Look for changes; then render due pages for up to ``budget`` seconds."""
        self._look()
        if render:
            self.welcome.check(self._db(), self.clock())
        if time.monotonic() >= self._next_forget:
            self.forget_searches(time.monotonic())
            self._next_forget = time.monotonic() + 10.0
        if not render:
            return
        deadline = time.monotonic() + budget
        done = 0
        while time.monotonic() < deadline and not self._stop.is_set():
            path = self._next_due()
            if path is None:
                break
            if self._render_path(path):
                done += 1
            else:
                self._look()  # a commit landed meanwhile: find out what it touched first
        if done and (not self.queue or time.monotonic() > self._saved + SAVE_SECONDS):
            self._save()  # a restart continues from here
        self._write_state()

    def _look(self) -> None:
        """Delete the files of whatever changed since the last look and queue them.

        Replicated posts are rendered first (:class:`~portal.rendering.PendingRenders`):
        the rendering's commit moves ``data_version``, so the pages are rendered once,
        with the rendered Markdown, not first with the agent's stand-in.
        """
        began = time.monotonic()
        self._look_for_changes()
        self.looked = began

    def _look_for_changes(self) -> None:
        conn = self._db()
        if self.pending is not None:
            self.pending.check(conn)
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        now = self.clock()
        day = self._day_of(now)
        if day != self._day:  # the day turns: every relative date changes
            midnight = self._midnight_after(now)
            self._clear()
            self._day = day
            self.items = snapshot(conn, now, self._blob_exists)
            self.queue = dict.fromkeys(all_pages(self.items), midnight)
            self._save()
            self._write_state()
            return
        if version == self._version and now < self._next_scan:
            return
        self._version = version
        expiry = next_expiry(conn, now)
        self._next_scan = min(now + RESCAN_SECONDS, expiry if expiry is not None else now + 1e9)
        fresh = snapshot(conn, now, self._blob_exists)
        touched: dict[str, float] = {}
        for key in set(self.items) | set(fresh):
            old, new = self.items.get(key), fresh.get(key)
            if old == new:
                continue
            not_before = 0.0
            if old is not None and old.live and new is not None and not new.live:
                not_before = now + MARGIN_SECONDS + 0.5  # render again once it has expired
            for path in pages_of(key, new, old):
                touched[path] = max(touched.get(path, 0.0), not_before)
        if not touched:
            self.items = fresh
            return
        for path, when in touched.items():
            self.queue[path] = max(self.queue.get(path, 0.0), when)
        self._write_state()  # "not complete" before anything else
        for path in touched:
            self._delete(path)
        self.items = fresh
        self._save()

    def _next_due(self) -> str | None:
        now = self.clock()
        for path, when in self.queue.items():
            if when <= now:
                return path
        return None

    def _due(self) -> bool:
        return self._next_due() is not None

    def _render_path(self, path: str) -> bool:
        """Render every page and language of ``path``; False if a commit spoilt it."""
        counts = families(self.items, self.page_size)
        pages = range(1, counts.get(path, 1) + 1)
        conn = self._db()
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        for lang in self.languages:
            for page in pages:
                body = self.render(path, page, lang)
                if int(conn.execute("PRAGMA data_version").fetchone()[0]) != version:
                    return False
                if body is not None:
                    self._write(file_name(lang, path, page), body)
                    self.rendered += 1
        self.queue.pop(path, None)
        return True

    def render(self, path: str, page: int, lang: str, *, query: str = "") -> bytes | None:
        """The page's bytes as an anonymous reader of ``lang`` gets them, if shareable.

        ``query`` (a raw query string) replaces ``page=N``; only :meth:`warm` uses it.
        """
        from werkzeug.test import EnvironBuilder

        from portal.caching import SHAREABLE_KEY
        from portal.pagecache import EXTENSION

        if any(not _SAFE_SEGMENT.fullmatch(part) for part in path.strip("/").split("/") if part):
            return None
        builder = EnvironBuilder(path=path, query_string=query or ("" if page == 1 else
                                                                 f"page={page}"),
                                 headers=[("Accept-Language", lang), ("Host", "localhost")],
                                 environ_base={"REMOTE_ADDR": "127.0.0.1"})
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        cache = self.app.extensions.get(EXTENSION)
        wsgi = cache.app if cache is not None else self.app.wsgi_app  # never the memory cache
        status: list[str] = []

        def start_response(line: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], object]:
            status[:] = [line]
            return lambda data: None

        result = wsgi(environ, start_response)
        body = read_answer(result)
        if not status or not status[0].startswith("200") or not environ.get(SHAREABLE_KEY):
            return None
        return body

    # --- files ------------------------------------------------------------------
    def _write(self, name: str, body: bytes) -> None:
        """``name`` and ``name.gz``, each by a temporary file renamed into place."""
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix, data in ((".gz", gzip.compress(body, 6, mtime=0)), ("", body)):
            final = target.with_name(target.name + suffix)
            temp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temp, final)

    def write_plain(self, name: str, body: bytes) -> None:
        """``name`` alone (no ``.gz``: nginx fills it in before compressing), atomically."""
        atomic_write(self.root / name, body)

    def _delete(self, path: str) -> None:
        """Remove every file of ``path`` (all its pages, every language), the page first."""
        with self._lock:
            self.generation += 1
            self._delete_files(path)

    def _delete_files(self, path: str) -> None:
        head, _, tail = path.rpartition("/")
        for lang in self.languages:
            folder = self.root / (lang + head)
            if not folder.is_dir():
                continue
            prefix = f"{tail}@"
            for entry in _names_with(folder, prefix):
                with contextlib.suppress(FileNotFoundError):
                    (folder / entry).unlink()
                with contextlib.suppress(FileNotFoundError):
                    (folder / (entry + ".gz")).unlink()

    def _clear(self) -> None:
        """Delete every page file (the manifest goes first: nothing claims them)."""
        with self._lock:
            self.generation += 1
            self._clear_files()

    def _clear_files(self) -> None:
        for name in (MANIFEST_NAME, STATE_NAME):
            with contextlib.suppress(FileNotFoundError):
                (self.root / name).unlink()
        self._state_mark = None
        for lang in self.languages:
            shutil.rmtree(self.root / lang, ignore_errors=True)

    # --- bookkeeping ------------------------------------------------------------
    def _save(self) -> None:
        data = {"code": self._fingerprint(), "day": self._day,
                "items": {key: [i.digest, i.group, i.live] for key, i in self.items.items()},
                "queue": sorted(self.queue.items())}
        atomic_write(self.root / MANIFEST_NAME, json.dumps(data, separators=(",", ":")))
        self._saved = time.monotonic()

    def _write_state(self) -> None:
        """``.state.json``: how far the renderer got (written only when that moved)."""
        mark = (len(self.queue), self.rendered)
        if mark == self._state_mark:
            return
        self._state_mark = mark
        state = {"complete": not self.queue, "queued": len(self.queue),
                 "rendered": self.rendered,
                 "seconds": round(time.monotonic() - self.started, 1)}
        atomic_write(self.root / STATE_NAME, json.dumps(state))

    def _read_manifest(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.root / MANIFEST_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not {"code", "day", "items", "queue"} <= set(data):
            return None
        return data

    def _fingerprint(self) -> str:
        return fingerprint(self.config)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(f"{self.db_path.resolve().as_uri()}?mode=ro", uri=True,
                                         check_same_thread=False, isolation_level=None)
        return self._conn

    def _blob_exists(self, sha256: str) -> bool:
        return (self.blobs_root / sha256[:2] / sha256).is_file()

    def _day_of(self, now: float) -> str:
        return datetime.fromtimestamp(now + MARGIN_SECONDS, self.zone).date().isoformat()

    def _midnight_after(self, now: float) -> float:
        """The start of the day that ``now`` plus the margin falls in (may be past)."""
        day = datetime.fromtimestamp(now + MARGIN_SECONDS, self.zone).date()
        return datetime.combine(day, datetime.min.time(), self.zone).timestamp()

def fingerprint(config: Any) -> str:
    """Everything besides the database that a page's bytes depend on, as one digest.

    The effective settings (sorted: the same in every process, unlike the
    config's ``repr``), and the name, size and time of every file of the portal
    package (code, templates, translations, static files).
    """
    import portal

    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(getattr(config, "values", {}), sort_keys=True,
                             default=str).encode())
    for path in sorted(_files(Path(portal.__file__).parent)):
        info = path.stat()
        digest.update(f"{path}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _names_with(folder: Path, prefix: str) -> Iterator[str]:
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.name.startswith(prefix)
                 and e.name.endswith(".html")]
    yield from names


def _files(folder: Path) -> Iterable[Path]:
    for path in folder.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path


def _zone(name: str) -> Any:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


class LazyFiles:
    """WSGI middleware: keeps answers to plain queries (a search, a collection) as files.

    The renderer cannot know which searches residents will make, but each
    answer stays true until the next change, exactly like a page file: so the
    first answer to ``/search?q=bicycle`` in a language is written (by
    :meth:`Renderer.keep`) where nginx looks for it, and the next reader gets
    the file. Every change deletes them with the pages of ``/search`` (and of
    the list they belong to), as :func:`pages_of` says.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], renderer: Renderer) -> None:
        """Wrap the WSGI ``app``; kept answers go to ``renderer``'s folder."""
        self.app = app
        self.renderer = renderer

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Pass the request on; keep its answer if it is everyone's and a plain query's."""
        args = str(environ.get("QUERY_STRING", ""))
        path = str(environ.get("PATH_INFO", ""))
        if (environ.get("REQUEST_METHOD") != "GET" or not self.renderer.ready
                or not keepable(path, args)):
            return self.app(environ, start_response)
        generation = self.renderer.generation
        shared: list[bool] = []

        def capture(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            shared[:] = [line.startswith("200") and everyones(headers)]
            return start_response(line, headers, exc_info)

        body = read_answer(self.app(environ, capture))
        lang = _HTML_LANG.search(body[:1024])
        if not (shared and shared[0] and lang):
            return [body]

        def keep() -> None:
            try:
                self.renderer.keep(generation, lang.group(1).decode(), path, args, body)
            except OSError as error:  # a full disk: the portal answers, nginx asks again
                log.warning("page files: could not keep %s?%s: %s", path, args, error)
        return _ThenKeep(body, keep)


def everyones(headers: list[tuple[str, str]]) -> bool:
    """Whether an answer's headers make it a page for every reader (portal/caching.py's rules).

    ``public`` with ``s-maxage``, no cookie set, and no ``Vary`` beyond ``Cookie``
    and ``Accept-Language`` (the answers the page cache and nginx may share), as
    read from the headers so that the in-process page cache's hits count too.
    """
    control, vary, cookie = "", set(), False
    for name, value in headers:
        lowered = name.lower()
        if lowered == "cache-control":
            control += value.lower() + ","
        elif lowered == "vary":
            vary |= {v.strip().lower() for v in value.split(",") if v.strip()}
        elif lowered == "set-cookie":
            cookie = True
    parts = {p.strip().split("=")[0] for p in control.split(",")}
    return ("public" in parts and "s-maxage" in parts and "private" not in parts
            and "no-store" not in parts and not cookie and vary <= {"cookie", "accept-language"})


class _ThenKeep(list[bytes]):
    """A WSGI answer that, once sent (the server calls ``close``), keeps itself as a file."""

    def __init__(self, body: bytes, then: Callable[[], None]) -> None:
        super().__init__([body])
        self._then: Callable[[], None] | None = then

    def close(self) -> None:
        """Called by the server after the answer went out: write the file now."""
        then, self._then = self._then, None
        if then is not None:
            then()


def start(app: Any, config: Any, pending: PendingRenders | None = None) -> Renderer | None:
    """Start keeping ``app``'s page files if this node serves them (see :func:`enabled`);
    ``pending`` (:func:`portal.rendering.start`) then looks in its thread.

    Also wraps the app in :class:`LazyFiles` (outermost: it writes a kept answer
    after the server sent it), and answers signed-in accounts' residents' pages from
    the files (:mod:`portal.signed_files`).
    """
    if not enabled(config):
        return None
    from portal import signed_files

    renderer = Renderer(app, config, pending=pending)
    app.wsgi_app = LazyFiles(app.wsgi_app, renderer)
    signed_files.init_app(app, renderer)  # signed-in accounts' pages from the files too
    renderer.start()
    return renderer
