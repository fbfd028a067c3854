"""An in-process cache of rendered anonymous pages, exact about content changes.

A crowd on the mesh asks for the same few pages (the home page, a notice, a
search everyone was told about). Rendering one costs milliseconds of Python;
answering from memory costs microseconds. The cache sits in front of the
Flask app as WSGI middleware and keeps only what nginx's micro-cache may
keep too: ``GET`` answers ``200`` that :mod:`portal.caching` marked as a
shared page (``Cache-Control: public, … s-maxage``: no session, no cookie
set, no ``Authorization``, no ``Vary`` beyond ``Cookie, Accept-Language``).

The key is what such a page depends on in the request: scheme, host, path, query,
the ``lang`` cookie and ``Accept-Language`` (the same inputs as nginx's
cache key). A request carrying the session cookie or ``Authorization`` is
never answered from the cache.

A stored page is used only while all of these hold, so it is never staler
than a fresh render would be, except for inputs outside the database, which
are bounded by ``portal.cache_seconds`` exactly like nginx's copy:

* no write was committed to the content database since it was rendered, by
  this process or any other (``meshhub post``, replication): a dedicated,
  never-writing SQLite connection reads ``PRAGMA data_version``, which
  changes whenever another connection commits;
* no listing or notice has expired since (the next expiry moment is read
  from the ``search_docs_expiry`` index, on the store's clock);
* it is younger than ``portal.cache_seconds`` (library files arriving on
  disk, the clock shown on a page). ``cache_seconds = 0`` turns the cache off.

Conditional requests are answered ``304`` from the stored validators, as
Flask would. Memory is bounded (:data:`MAX_BYTES`, least recently used out).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.agent_app import read_answer
from portal.caching import CACHE_SECONDS_KEY, SHAREABLE_KEY

__all__ = ["MARK", "MAX_BYTES", "ChangeWatcher", "LazyWatcher", "PageCache", "init_app"]

#: WSGI environ key :mod:`portal.caching` sets on a page that may be shared.
MARK = SHAREABLE_KEY
#: Total bytes of page bodies kept at most (a Pi Zero 2 W has 512 MB).
MAX_BYTES = 2 * 1024 * 1024
#: A single page larger than this is not kept.
MAX_PAGE_BYTES = 256 * 1024
#: How long a request waits for another thread's render of the same page, at most.
RENDER_WAIT_SECONDS = 10.0
#: Config key: set to False to turn the cache off (tests of rendering).
CONFIG_KEY = "MESHHUB_PAGE_CACHE"
EXTENSION = "meshhub.pagecache"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class _Page:
    version: int  # PRAGMA data_version when rendered
    born: float  # time.monotonic() when rendered
    until: float | None  # the next expiry moment (store clock) after the render began
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    etag: str | None
    last_modified: str | None


class ChangeWatcher:
    """Tells whether the content database changed, and when the next item expires.

    One private read-only use SQLite connection (never writing, so that
    ``PRAGMA data_version`` moves on *every* commit, including this process's
    own threads'), shared under a lock: each check is a few microseconds.
    """

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._expiry_for: tuple[int, float | None] | None = None

    def version(self) -> int:
        """A number that differs whenever a write was committed since the last call."""
        with self._lock:
            conn = self._connection()
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def next_expiry(self, version: int) -> float | None:
        """The next moment (store clock) a live listing or notice expires, or None."""
        now = self._clock()
        with self._lock:
            known = self._expiry_for
            if known is not None and known[0] == version and (known[1] is None or
                                                              known[1] > now):
                return known[1]
            row = self._connection().execute(
                "SELECT min(expires_at) FROM search_docs WHERE expires_at > ?",
                (int(now),)).fetchone()
            moment = None if row[0] is None else float(row[0])
            self._expiry_for = (version, moment)
            return moment

    def now(self) -> float:
        """The store's clock (Unix seconds)."""
        return self._clock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(f"{self._path.resolve().as_uri()}?mode=ro", uri=True,
                                   check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA cache_size = -64")  # reads two tiny things only
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Close the connection (it reopens on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class LazyWatcher:
    """A :class:`ChangeWatcher` made on first use, not when the app is made (an app
    that never serves a page opens no connection); the page and the search cache each
    hold one."""

    def __init__(self, factory: Callable[[], ChangeWatcher]) -> None:
        self._factory = factory
        self._watcher: ChangeWatcher | None = None
        self._lock = threading.Lock()

    def get(self) -> ChangeWatcher:
        """The watcher, made now if this is the first use."""
        if self._watcher is None:
            with self._lock:
                if self._watcher is None:
                    self._watcher = self._factory()
        return self._watcher

    def close(self) -> None:
        """Close the watcher's connection, if it was ever made."""
        if self._watcher is not None:
            self._watcher.close()


class PageCache:
    """WSGI middleware keeping shared pages of ``app`` (see the module docstring)."""

    def __init__(self, app: WSGIApp, watcher_factory: Callable[[], ChangeWatcher], *,
                 ttl: float, session_cookie: str, max_bytes: int = MAX_BYTES) -> None:
        self.app = app
        self.ttl = ttl
        self.session_cookie = session_cookie
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._watcher = LazyWatcher(watcher_factory)
        self._pages: OrderedDict[tuple[str, ...], _Page] = OrderedDict()
        self._rendering: dict[tuple[str, ...], threading.Event] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    # --- WSGI ---------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer from the cache when allowed and fresh, else render (and maybe keep)."""
        key = self._key(environ)
        if key is None:
            return self.app(environ, start_response)
        watcher = self._watcher.get()
        version = watcher.version()
        page = self._fresh(key, version, watcher)
        if page is None:
            # One thread renders a missing page; the others asking for it meanwhile
            # wait for that render instead of repeating it (a crowd after a change).
            done, leader = self._claim(key)
            if not leader:
                done.wait(RENDER_WAIT_SECONDS)
                version = watcher.version()
                page = self._fresh(key, version, watcher)
            if page is None:
                try:
                    return self._render(key, version, watcher, environ, start_response)
                finally:
                    if leader:
                        self._release(key, done)
        self.hits += 1
        return self._answer(page, environ, start_response)

    def _render(self, key: tuple[str, ...], version: int, watcher: ChangeWatcher,
                environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Run the app; keep its answer if it is a shareable page."""
        self.misses += 1
        until = watcher.next_expiry(version)  # before rendering: errs on the early side
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]],
                    exc_info: Any = None) -> Any:
            captured[:] = [status, headers]
            return start_response(status, headers, exc_info)

        result = self.app(environ, capture)
        if not environ.get(MARK) or not captured or not captured[0].startswith("200"):
            return result
        body = read_answer(result)
        self._keep(key, _Page(version, time.monotonic(), until, captured[0], list(captured[1]),
                              body, _header(captured[1], "etag"),
                              _header(captured[1], "last-modified")))
        return [body]

    def _claim(self, key: tuple[str, ...]) -> tuple[threading.Event, bool]:
        """The event of the render of ``key`` under way, and whether this thread leads it."""
        with self._lock:
            running = self._rendering.get(key)
            if running is not None:
                return running, False
            event = self._rendering[key] = threading.Event()
            return event, True

    def _release(self, key: tuple[str, ...], event: threading.Event) -> None:
        with self._lock:
            if self._rendering.get(key) is event:
                del self._rendering[key]
        event.set()

    def _key(self, environ: dict[str, Any]) -> tuple[str, ...] | None:
        """The cache key of this request, or None when it must not be served from cache."""
        if environ.get("REQUEST_METHOD") != "GET" or "HTTP_AUTHORIZATION" in environ:
            return None
        lang = ""
        raw_cookie = environ.get("HTTP_COOKIE")
        if raw_cookie:
            from werkzeug.http import parse_cookie

            cookies = parse_cookie(raw_cookie)
            if self.session_cookie in cookies:
                return None
            lang = cookies.get("lang", "")
        return (environ.get("wsgi.url_scheme", ""), environ.get("HTTP_HOST", ""),
                environ.get("SCRIPT_NAME", ""),
                environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""), lang,
                environ.get("HTTP_ACCEPT_LANGUAGE", ""))

    def _fresh(self, key: tuple[str, ...], version: int,
               watcher: ChangeWatcher) -> _Page | None:
        """The stored page for ``key`` if nothing it depends on changed (else dropped)."""
        with self._lock:
            page = self._pages.get(key)
            if page is None:
                return None
            if (page.version == version and time.monotonic() - page.born < self.ttl
                    and (page.until is None or watcher.now() < page.until)):
                self._pages.move_to_end(key)
                return page
            del self._pages[key]
            self._bytes -= len(page.body)
            return None

    def _keep(self, key: tuple[str, ...], page: _Page) -> None:
        if len(page.body) > MAX_PAGE_BYTES:
            return
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body)
            self._pages[key] = page
            self._bytes += len(page.body)
            while self._bytes > self.max_bytes and self._pages:
                _, dropped = self._pages.popitem(last=False)
                self._bytes -= len(dropped.body)

    @staticmethod
    def _answer(page: _Page, environ: dict[str, Any],
                start_response: StartResponse) -> Iterable[bytes]:
        if "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MODIFIED_SINCE" in environ:
            from werkzeug.wrappers import Response

            response = Response(page.body, status=page.status, headers=page.headers)
            return response.make_conditional(environ)(environ, start_response)
        start_response(page.status, list(page.headers))
        return [page.body]

    # --- lifecycle ----------------------------------------------------------------
    def clear(self) -> None:
        """Forget every stored page."""
        with self._lock:
            self._pages.clear()
            self._bytes = 0

    def close(self) -> None:
        """Forget every page and close the watcher's connection."""
        self.clear()
        self._watcher.close()

    @property
    def size_bytes(self) -> int:
        """Bytes of page bodies held now."""
        return self._bytes


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def store_watcher(app: Any) -> Callable[[], ChangeWatcher]:
    """A factory of :class:`ChangeWatcher` on ``app``'s content database (for
    :class:`LazyWatcher`: the store is opened only when the first check needs it)."""
    def watcher() -> ChangeWatcher:
        from portal.db import services

        store = services(app).store
        return ChangeWatcher(store.path, store.clock)

    return watcher


def init_app(app: Any) -> PageCache | None:
    """Wrap ``app.wsgi_app`` in a :class:`PageCache` (unless turned off); returns it."""
    ttl = float(app.config.get(CACHE_SECONDS_KEY, 0))
    if not app.config.get(CONFIG_KEY, True) or ttl <= 0:
        return None

    cache = PageCache(app.wsgi_app, store_watcher(app), ttl=ttl,
                      session_cookie=app.config.get("SESSION_COOKIE_NAME", "session"))
    app.wsgi_app = cache
    app.extensions[EXTENSION] = cache
    return cache
