"""Residents' pages made from the page files (:mod:`portal.pagefiles`) when they reach the
portal: for a signed-in account, and for residents whose language nginx could not tell.

nginx sends residents' page files only to browsers without the private-pages
cookie, so every page a signed-in organiser opens reaches the portal and was
rendered in Python for them: 5-6 ms of CPU for home or a category page with
10,000 listings, against microseconds for a file. Yet a residents' page differs
for a signed-in account in one place only: the footer's organisers' link ("Organisers:
sign in" becomes the dashboard, or "Node health" for a technician;
``organisers/_footer_links.html``). So, for a signed-in account, the portal reads
the anonymous page's file and puts the account's footer link in place of the
anonymous one: a file read and a string replacement.

The same holds, without the replacement, for a resident's request that nginx
passed on only because it could not tell the language the portal would choose
(an odd ``Accept-Language`` or ``lang`` cookie: nginx's maps defer to the portal
rather than guess): the portal negotiates the language, and the file of that
language is its page. Such headers are as varied as the pages they ask for, so
nginx's micro-cache, keyed by them, rarely helps; each was a full render.

The answer goes through the portal's usual ``after_request`` rules (a resident's
page is ``public`` with its ``ETag``, exactly as rendered). Everything the portal
does for a signed-in request still happens: the session is
checked (``portal.auth.load_account``: an account disabled, a password changed or
a session ended is signed out first and gets the anonymous page), the session
cookie is refreshed, the answer is ``private, no-store``. A page is rendered as
before when:

* a message waits to be shown (a flash: the page shows it), or a resident's request
  carries ``Authorization``;
* the request is not a ``GET`` or ``HEAD``, names another host than this node
  (the captive portal's business), or a path and query no page file answers (the
  same mapping as nginx's: none, ``page=N`` or a plain query kept after its first
  answer);
* **a commit may not be in the files yet.** A resident may get a page up to a
  look of the renderer (0.2 s) after a commit; an organiser who just posted must
  see it at once. A private read-only SQLite connection reads ``PRAGMA
  data_version`` (it moves on every commit of any connection); the moment it is
  first seen to move, every file counts as stale until the renderer has *begun*
  a look after that moment and finished it (it deletes the files of what changed
  before it finishes). The renderer's last look must also be under
  :data:`portal.pagefiles.MARGIN_SECONDS` old: it deletes an expiring item's pages
  that long before the moment, so an expired item is never shown, even if the
  renderer were held up;
* the file's anonymous footer link is not found exactly once.

The footer links are rendered from their template, once per language and account
(at most :data:`MAX_FOOTERS` kept). Tests: ``tests/portal/test_signed_files.py``
(the same bytes and headers as the portal's own render for each role and kind of
page, and for residents with odd language headers; a new post seen at once; a
disabled account; a flash; nothing written to the files).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, Response, current_app, g, render_template, request, session
from flask_babel import get_locale

from portal.captive.views import our_host
from portal.pagecache import ChangeWatcher

if TYPE_CHECKING:
    from portal.pagefiles import Renderer

#: Where the app keeps its :class:`SignedFiles`.
EXTENSION = "meshhub.signed_files"
#: The template of the footer's organisers' link, the one part a signed-in account changes.
FOOTER_TEMPLATE = "organisers/_footer_links.html"
#: Footer links kept at most (languages x accounts signed in).
MAX_FOOTERS = 64


class SignedFiles:
    """Answers a signed-in account's residents' pages from the renderer's files."""

    def __init__(self, renderer: Renderer, db_path: Path) -> None:
        """Read ``renderer``'s files; ``db_path`` is the content database watched for commits."""
        self.renderer = renderer
        self._lock = threading.Lock()
        self._watcher = ChangeWatcher(db_path, time.time)  # its data_version only
        self._footers: dict[tuple[str, object], tuple[bytes, bytes]] = {}
        # Commits before now are in the files once a look begun after now has finished.
        self._changed_at = time.monotonic()
        self._version = self._watcher.version()

    def current(self) -> bool:
        """Whether the files hold every commit made so far (see the module's text)."""
        now = time.monotonic()
        with self._lock:
            version = self._watcher.version()
            if version != self._version:
                self._version = version
                self._changed_at = now
            changed_at = self._changed_at
        looked = self.renderer.looked
        return looked > changed_at and now - looked <= self.renderer.margin

    def footers(self) -> tuple[bytes, bytes]:
        """(the anonymous footer link, this account's) in this request's language."""
        key = (str(get_locale()), g.account)
        with self._lock:
            found = self._footers.get(key)
        if found is not None:
            return found
        account = g.account
        try:
            g.account = None
            anonymous = render_template(FOOTER_TEMPLATE).encode()
        finally:
            g.account = account
        found = (anonymous, render_template(FOOTER_TEMPLATE).encode())
        with self._lock:
            if len(self._footers) >= MAX_FOOTERS:
                self._footers.clear()
            self._footers[key] = found
        return found

    def answer(self) -> Response | None:
        """This request's page made from its file, or None (the view renders it)."""
        account = g.get("account")
        if (request.method not in ("GET", "HEAD") or session.get("_flashes")
                or (account is None and "Authorization" in request.headers)
                or not self.renderer.ready
                or not our_host(request.host or "", current_app.config["NODE_CONFIG"])):
            return None
        from portal.pagefiles import file_for

        name = file_for(str(get_locale()), request.path,
                        request.query_string.decode("latin-1"), self.renderer.languages)
        if name is None or not self.current():
            return None
        try:
            body = (self.renderer.root / name).read_bytes()
        except OSError:  # not rendered (yet), or deleted by a change: the view renders it
            return None
        if account is None:  # a header nginx could not read the language from: the same page
            return Response(body, 200, content_type="text/html; charset=utf-8")
        anonymous, mine = self.footers()
        if not anonymous.strip() or body.count(anonymous) != 1:
            return None
        return Response(body.replace(anonymous, mine), 200,
                        content_type="text/html; charset=utf-8")

    def close(self) -> None:
        """Close the watching connection."""
        self._watcher.close()


def init_app(app: Flask, renderer: Renderer) -> SignedFiles:
    """Answer ``app``'s signed-in residents' pages from ``renderer``'s files.

    Its check runs after every other ``before_request`` function (the captive
    portal's probes and foreign hosts, the session check), so it sees the
    signed-in account those leave.
    """
    from portal.db import services

    signed = SignedFiles(renderer, Path(services(app).store.path))
    app.extensions[EXTENSION] = signed
    app.before_request_funcs.setdefault(None, []).append(signed.answer)
    return signed
