"""HTTP caching for the portal: validators, 304s and who may keep a copy.

Every successful ``GET``/``HEAD`` page gets

* a strong ``ETag`` computed from the rendered body, and a ``Last-Modified``
  time: the moment this process first rendered exactly these bytes, so that
  ``If-Modified-Since`` works too and the time only moves when the page
  really changed;
* a ``304 Not Modified`` answer to ``If-None-Match``/``If-Modified-Since``
  (a phone on a weak mesh link re-downloads nothing);
* ``Cache-Control``: anonymous pages are ``public, max-age=0,
  s-maxage=<portal.cache_seconds>`` — browsers revalidate every time (cheap,
  thanks to the ETag), while nginx in front may keep the page for a few
  seconds (micro-cache) and absorb a crowd; pages of a signed-in organiser,
  or any answer that sets a cookie (a CSRF token, a new session), are
  ``private, no-store``. A view that sets ``Cache-Control`` itself (a captive
  portal probe whose answer depends on the client, say) is left alone.

Static files get a content hash in their URL (``url_for('static', ...)``
adds ``?v=<hash>``); a request carrying the current hash is cacheable for a
year, others must revalidate. nginx applies the same rule when it serves
``/static/`` itself (``images/nginx/meshhub.conf``).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, request, session
from werkzeug.wrappers import Response

#: How long a versioned static file may be kept by browsers and nginx.
STATIC_MAX_AGE_SECONDS = 365 * 24 * 3600
#: Flask config key: seconds anonymous pages may be cached by the front.
CACHE_SECONDS_KEY = "MESHHUB_CACHE_SECONDS"
_VERSION_ARG = "v"
#: The request headers a shared page may depend on (the page caches' key covers them).
_SHARED_VARY = frozenset({"cookie", "accept-language"})
#: WSGI environ key telling portal.pagecache that this answer may be shared.
SHAREABLE_KEY = "meshhub.shareable"


class _FirstSeen:
    """When each page body (by ETag) was first rendered; bounded, thread-safe."""

    def __init__(self, size: int = 4096) -> None:
        self._times: OrderedDict[str, int] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def time_of(self, etag: str) -> int:
        """The first time ``etag`` was seen (now, if never)."""
        with self._lock:
            seen = self._times.get(etag)
            if seen is None:
                seen = int(time.time())
                self._times[etag] = seen
                if len(self._times) > self._size:
                    self._times.popitem(last=False)
            else:
                self._times.move_to_end(etag)
            return seen


class _StaticVersions:
    """Content hashes of static files, recomputed when a file's mtime changes."""

    def __init__(self) -> None:
        self._hashes: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def version(self, folder: str, filename: str) -> str | None:
        """Twelve hex digits of the file's SHA-256, or ``None`` if it does not exist."""
        path = os.path.join(folder, filename)
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return None
        with self._lock:
            known = self._hashes.get(path)
            if known and known[0] == mtime:
                return known[1]
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()[:12]
        with self._lock:
            self._hashes[path] = (mtime, digest)
        return digest


def init_app(app: Flask) -> None:
    """Install the caching rules on ``app`` (call once, from ``create_app``)."""
    if CACHE_SECONDS_KEY not in app.config:
        node_config = _node_config(app)
        app.config[CACHE_SECONDS_KEY] = (int(node_config.portal.cache_seconds)
                                         if node_config is not None else 5)
    from portal import accel

    accel.init_app(app)  # registered first so that it runs after the rules below
    first_seen = _FirstSeen()
    versions = _StaticVersions()
    app.extensions["meshhub.caching"] = {"first_seen": first_seen, "versions": versions}

    @app.url_defaults
    def _version_static(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and "filename" in values and _VERSION_ARG not in values:
            folder = current_app.static_folder
            version = versions.version(folder, values["filename"]) if folder else None
            if version:
                values[_VERSION_ARG] = version

    @app.after_request
    def _cache_headers(response: Response) -> Response:
        return apply_cache_rules(response, first_seen, versions)


def apply_cache_rules(response: Response, first_seen: _FirstSeen,
                      versions: _StaticVersions) -> Response:
    """Add validators and ``Cache-Control`` to ``response``; may turn it into a 304."""
    if request.method not in ("GET", "HEAD"):
        return response
    if request.endpoint == "static":
        return _static_rules(response, versions)
    if _is_personal(response):
        if "Cache-Control" not in response.headers or response.cache_control.public:
            response.headers["Cache-Control"] = "private, no-store"
        return response
    if (response.status_code != 200 or response.direct_passthrough or response.is_streamed
            or "X-Accel-Redirect" in response.headers):
        return response  # files (send_file sets its own validators), redirects, errors
    if "Cache-Control" not in response.headers:
        seconds = int(current_app.config.get(CACHE_SECONDS_KEY, 0))
        response.headers["Cache-Control"] = (f"public, max-age=0, s-maxage={seconds}"
                                             if seconds > 0 else "no-cache")
        response.vary.update(("Cookie", "Accept-Language"))
        if seconds > 0 and {v.lower() for v in response.vary} <= _SHARED_VARY:
            # A page nginx may share between readers: portal.pagecache may keep it too.
            request.environ[SHAREABLE_KEY] = True
    if response.get_etag()[0] is None:
        response.add_etag()
    etag = response.get_etag()[0]
    if response.last_modified is None and etag:
        response.last_modified = datetime.fromtimestamp(first_seen.time_of(etag), UTC)
    return response.make_conditional(request)


def _static_rules(response: Response, versions: _StaticVersions) -> Response:
    """Year-long caching for a static file asked for by its current hash."""
    if response.status_code not in (200, 206, 304):
        return response
    wanted = request.args.get(_VERSION_ARG)
    folder = current_app.static_folder
    filename = (request.view_args or {}).get("filename", "")
    if wanted and folder and wanted == versions.version(folder, filename):
        response.cache_control.no_cache = None
        response.cache_control.public = True
        response.cache_control.max_age = STATIC_MAX_AGE_SECONDS
        response.cache_control.immutable = True
        response.expires = int(time.time() + STATIC_MAX_AGE_SECONDS)  # type: ignore[assignment]
    else:
        response.cache_control.no_cache = True
        response.cache_control.public = True
    return response


def _is_personal(response: Response) -> bool:
    """Whether this answer belongs to one browser only (signed in, or setting a cookie)."""
    cookie_name = current_app.config.get("SESSION_COOKIE_NAME", "session")
    return bool(cookie_name in request.cookies
                or getattr(session, "modified", False)
                or "Set-Cookie" in response.headers
                or request.authorization is not None)


def _node_config(app: Flask) -> Any:
    """The app's NodeConfig, wherever ``create_app`` keeps it (or ``None``)."""
    for key in ("NODE_CONFIG", "MESHHUB_CONFIG", "MESHHUB_NODE_CONFIG"):
        value = app.config.get(key)
        if value is not None and hasattr(value, "get"):
            return value
    return app.extensions.get("meshhub.config")
