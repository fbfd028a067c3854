"""The short way for encyclopaedia entries: ZIM pages without the whole Flask request.

An article of an offline encyclopaedia is bytes out of an archive that never
changes (a library file is named by its SHA-256), plus the hub's bar. Going
through Flask for each one (request context, sessions, locale, hooks, the bar's
template) cost about 2 ms of Python per page; kiwix-serve answers the same
page in a fraction of that. This WSGI middleware answers the plain case itself:

    GET or HEAD /library/<item_id>/zim/<entry path>, no query string, no
    session cookie or ``Authorization``, no ``Range`` or conditional header,
    a host the portal serves, an item that is a readable ZIM archive here, and
    an entry that holds content (not a redirect) of at most
    :data:`FAST_MAX_BYTES`.

Anything else (redirects, 404s, searches, large media with ``Range``, 304s,
signed-in organisers) goes on to the Flask app unchanged, so every rule stays
written once. The answer is byte-for-byte what :func:`portal.residents.zim.entry`
and the app's hooks would send (tested side by side in
``tests/portal/test_zim_fast.py``): the same body with the same bar, and the
same headers (``Content-Security-Policy`` for archives, ``nosniff``,
``no-referrer``, ``Cache-Control``, ``Vary``, ``ETag``, ``Last-Modified``).

What it keeps, all bounded:

* the library items asked for, forgotten whenever the content database
  changes (``PRAGMA data_version`` on a private read-only connection, as
  :mod:`portal.pagecache` does), so a deleted or renamed item is seen at once;
* the hub's bar per item and per reader's language inputs (the ``lang`` cookie
  and ``Accept-Language``, as sent), rendered once by the real template inside
  a real request context;
* whether each ``Host`` is one the portal serves (asked once per name).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.http import http_date

__all__ = ["FAST_MAX_BYTES", "ZimFastPath", "init_app"]

#: Entries larger than this go through Flask (streamed in pieces, with Range).
FAST_MAX_BYTES = 512 * 1024
#: Bars kept (item x language inputs), and hosts remembered.
MAX_BARS = 512
MAX_HOSTS = 64
#: Config key: set to False to send every ZIM request through Flask (tests compare both).
CONFIG_KEY = "MESHHUB_ZIM_FAST"
EXTENSION = "meshhub.zimfast"
_PREFIX = "/library/"
_MARKER = "/zim/"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _Lru(OrderedDict[Any, Any]):
    """A small least-recently-used map (callers hold the middleware's lock)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class ZimFastPath:
    """WSGI middleware answering plain ZIM entry requests itself (module docstring)."""

    def __init__(self, app: Flask, inner: WSGIApp) -> None:
        self.flask = app
        self.inner = inner
        self.served = 0  #: requests answered here (the rest went to Flask)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None
        self._items: dict[str, Any] = {}
        self._bars = _Lru(MAX_BARS)
        self._hosts = _Lru(MAX_HOSTS)
        self._dates = _Lru(MAX_HOSTS)
        self._paths: dict[str, str] = {}
        self._session_cookie = str(app.config.get("SESSION_COOKIE_NAME", "session"))
        self._vary = "Accept-Language, Cookie"

    # --- WSGI ---------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer a plain entry request here; pass anything else on to Flask."""
        answer = self._answer(environ)
        if answer is None:
            return self.inner(environ, start_response)
        headers, body = answer
        self.served += 1
        start_response("200 OK", headers)
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    def _answer(self, environ: dict[str, Any]) -> tuple[list[tuple[str, str]], bytes] | None:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or environ.get("QUERY_STRING"):
            return None
        path = environ.get("PATH_INFO", "")
        if not path.startswith(_PREFIX):
            return None
        item_id, marker, raw_entry = path[len(_PREFIX):].partition(_MARKER)
        if not marker or not raw_entry or "/" in item_id:
            return None
        if any(key in environ for key in ("HTTP_RANGE", "HTTP_IF_NONE_MATCH",
                                          "HTTP_IF_MODIFIED_SINCE", "HTTP_AUTHORIZATION",
                                          "HTTP_IF_RANGE")):
            return None
        cookie_header = environ.get("HTTP_COOKIE", "")
        if self._session_cookie in cookie_header:
            return None
        if not self._our_host(str(environ.get("HTTP_HOST", ""))):
            return None
        entry_path = _entry_path(raw_entry)
        if entry_path is None:
            return None
        item = self._item(item_id)
        if item is None:
            return None
        archive = self._archive(item)
        if archive is None:
            return None
        from node.library.zim import ZimContent

        found = archive.entry(entry_path)
        if not isinstance(found, ZimContent) or len(found.content) > FAST_MAX_BYTES:
            return None
        return self._response(environ, item, entry_path, found, cookie_header)

    def _response(self, environ: dict[str, Any], item: Any, entry_path: str, found: Any,
                  cookie_header: str) -> tuple[list[tuple[str, str]], bytes] | None:
        from portal.residents.zim import ASSET_MAX_AGE, BODY_TAG, ZIM_POLICY

        mimetype = found.mimetype or "application/octet-stream"
        is_html = mimetype.split(";")[0].strip().lower() == "text/html"
        if mimetype.startswith("text/") and "charset" not in mimetype:
            mimetype += "; charset=utf-8"
        content = bytes(found.content)
        if is_html:
            match = BODY_TAG.search(content)
            if match is not None:
                bar = self._bar(environ, item, cookie_header)
                if bar is None:
                    return None
                content = content[:match.end()] + bar + content[match.end():]
            etag = hashlib.sha1(content).hexdigest()  # noqa: S324 - werkzeug's add_etag
            headers = [("Content-Type", mimetype), ("Content-Length", str(len(content))),
                       ("Content-Security-Policy", ZIM_POLICY), ("Vary", self._vary),
                       ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
                       ("Cache-Control", self._page_cache_control()),
                       ("ETag", f'"{etag}"'), ("Last-Modified", self._last_modified(etag))]
        else:
            etag = hashlib.sha256(f"{item.sha256}/{entry_path}".encode()).hexdigest()[:32]
            headers = [("Content-Type", mimetype), ("Content-Length", str(len(content))),
                       ("Content-Security-Policy", ZIM_POLICY),
                       ("Cache-Control", f"public, max-age={ASSET_MAX_AGE}"),
                       ("ETag", f'"{etag}"'), ("Accept-Ranges", "bytes"), ("Vary", self._vary),
                       ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]
        return headers, content

    # --- what the answer depends on -------------------------------------------------
    def _page_cache_control(self) -> str:
        from portal.caching import CACHE_SECONDS_KEY

        seconds = int(self.flask.config.get(CACHE_SECONDS_KEY, 0))
        return f"public, max-age=0, s-maxage={seconds}" if seconds > 0 else "no-cache"

    def _last_modified(self, etag: str) -> str:
        first_seen = self.flask.extensions["meshhub.caching"]["first_seen"]
        moment = first_seen.time_of(etag)
        text = self._dates.get(moment)
        if text is None:  # formatting a date costs more than the rest of the headers
            text = http_date(datetime.fromtimestamp(moment, UTC))
            with self._lock:
                self._dates.put(moment, text)
        return str(text)

    def _our_host(self, host: str) -> bool:
        with self._lock:
            known = self._hosts.get(host)
        if known is None:
            from portal.captive.views import our_host

            with self.flask.app_context():
                known = bool(our_host(host, self.flask.config["NODE_CONFIG"]))
            with self._lock:
                self._hosts.put(host, known)
        return bool(known)

    def _item(self, item_id: str) -> Any:
        """The library item (cached until the content database changes), or None."""
        from portal.db import services

        store = services(self.flask).store
        with self._lock:
            if self._conn is None:
                self._conn = sqlite3.connect(f"{Path(store.path).resolve().as_uri()}?mode=ro",
                                             uri=True, check_same_thread=False,
                                             isolation_level=None)
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            if version != self._version:
                self._items.clear()
                self._bars.clear()
                self._version = version
            if item_id in self._items:
                return self._items[item_id]
        item = store.library_item(item_id)
        if item is not None and item.media_type != "zim":
            item = None
        with self._lock:
            if self._version == version:
                if len(self._items) >= MAX_BARS:
                    self._items.clear()
                self._items[item_id] = item
        return item

    def _archive(self, item: Any) -> Any:
        from node.errors import ValidationError
        from portal.db import services
        from portal.residents.zim import archive_cache

        path = self._paths.get(item.sha256)
        if path is None:
            path = str(services(self.flask).blobs.path(item.sha256))
            with self._lock:
                if len(self._paths) >= MAX_BARS:
                    self._paths.clear()
                self._paths[item.sha256] = path
        if not os.path.isfile(path):
            return None
        try:
            return archive_cache(self.flask).get(item.sha256, path)
        except ValidationError:
            return None  # Flask logs it and answers 404

    def _bar(self, environ: dict[str, Any], item: Any, cookie_header: str) -> bytes | None:
        """The hub's bar for this item and reader, rendered once by the real template."""
        # Keyed by the raw inputs of the language choice (the Cookie header carries the
        # ``lang`` cookie; a session cookie never reaches here), so the choice itself is
        # made once, by the app's own locale selector.
        key = (item.id, item.title, cookie_header, environ.get("HTTP_ACCEPT_LANGUAGE", ""))
        with self._lock:
            bar = self._bars.get(key)
        if bar is None:
            from portal.residents.zim import hub_bar

            with self.flask.request_context(environ):
                bar = hub_bar(item)
            with self._lock:
                self._bars.put(key, bar)
        return bytes(bar)

    def close(self) -> None:
        """Close the private connection (it reopens on next use); forget what is kept."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._items.clear()
            self._bars.clear()
            self._version = None


def _entry_path(raw: str) -> str | None:
    """The entry path as Flask sees it: WSGI's ``PATH_INFO`` is already percent-decoded,
    as latin-1 text of the raw bytes; None when they are not UTF-8 (Flask decides then)."""
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return None


def init_app(app: Flask) -> ZimFastPath | None:
    """Put :class:`ZimFastPath` around ``app.wsgi_app`` (unless turned off); returns it."""
    if not app.config.get(CONFIG_KEY, True):
        return None
    fast = ZimFastPath(app, app.wsgi_app)
    app.wsgi_app = fast  # type: ignore[method-assign]
    app.extensions[EXTENSION] = fast
    return fast
