"""Pages with a form rendered once per language and state, each visitor's CSRF token
filled in: the captive pages every phone opens (``/welcome``, ``/emergency``) and the
residents' submit form (``/submit``).

Every phone that joins the Wi-Fi opens ``/welcome`` (or, while a broadcast is in
force, ``/emergency``); its form carries a CSRF token of the phone's own session, so
the page cannot be shared as it is (nginx and :mod:`portal.pagecache` never keep
it). Everything else on it depends on few inputs: the language, the gate's answer
for the device, the notice shown, the path with its query (the language links'
``next=``), and the site's fixed facts (community, node name). So the page is
rendered once per such key with a placeholder where the token goes, and each
request fills in its own token: a string replacement instead of a template render
(milliseconds of Python, for each of hundreds of phones arriving at once). The
empty submit form is the same: the same for everyone but its token.

Rendered normally, never kept: a signed-in visitor (the footer names their
account), a message waiting to be shown (a flash), a problem to report, a device
with time left (the page shows it), a form sent back with its errors, or a long
query string. The token is HTML-escaped when filled in, as the template would have
escaped it.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Hashable

from flask import current_app, g, request, session
from flask_babel import get_locale
from flask_wtf.csrf import generate_csrf
from markupsafe import escape

#: Where the cache lives in ``app.extensions``.
EXTENSION = "meshhub.token_pages"
#: Pages kept at most (pages x languages x device states x paths); the oldest goes first.
MAX_PAGES = 64
#: A query string longer than this is rendered, not kept (nobody's link has one).
MAX_QUERY = 64


class TokenPages:
    """Rendered pages by key, each with a placeholder for the CSRF token."""

    def __init__(self) -> None:
        #: Random per process, so no text a visitor sends can be mistaken for it.
        self.slot = f"csrf-slot-{secrets.token_hex(16)}"
        self._pages: dict[tuple[Hashable, ...], str] = {}
        self._lock = threading.Lock()

    def page(self, key: tuple[Hashable, ...], render: Callable[[Callable[[], str]], str],
             token: Callable[[], str]) -> str:
        """The page for ``key`` with ``token()`` filled in; ``render(csrf_token)`` renders
        it (once per key, with the placeholder as its token)."""
        with self._lock:
            shell = self._pages.get(key)
        if shell is None:
            shell = render(lambda: self.slot)
            if shell.count(self.slot) > 1:  # the template changed: do not guess
                return render(token)
            with self._lock:
                if len(self._pages) >= MAX_PAGES:
                    self._pages.pop(next(iter(self._pages)))
                self._pages[key] = shell
        if self.slot not in shell:  # no form on it (an emergency notice already read)
            return shell
        return shell.replace(self.slot, str(escape(token())))


def pages() -> TokenPages:
    """This app's kept pages (made on first use)."""
    found = current_app.extensions.get(EXTENSION)
    if found is None:
        found = current_app.extensions.setdefault(EXTENSION, TokenPages())
    return found  # type: ignore[no-any-return]


def shared_key(*inputs: Hashable, personal: bool = False) -> tuple[Hashable, ...] | None:
    """The key of this request's page: ``inputs`` (what the view renders it from: the
    template, the device's state, the notice) with the language, path and query; or
    None when it must be rendered for this visitor alone (``personal``: a problem to
    report, time left; or signed in, a flash waiting, a long query)."""
    if personal or getattr(g, "account", None):
        return None
    if session.get("_flashes") or len(request.query_string) > MAX_QUERY:
        return None
    return (*inputs, str(get_locale()), request.path, request.query_string)


def filled(key: tuple[Hashable, ...] | None, render: Callable[[Callable[[], str]], str]) -> str:
    """The page ``render(csrf_token)`` makes, with this visitor's token: rendered once per
    ``key`` and the token filled in, or for this visitor alone when ``key`` is None."""
    return render(generate_csrf) if key is None else pages().page(key, render, generate_csrf)
