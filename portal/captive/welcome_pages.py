"""The welcome page rendered once per language and device state, with each phone's own
CSRF token filled in.

Every phone that joins the Wi-Fi opens ``/welcome``; its form carries a CSRF token of
the phone's own session, so the page cannot be shared as it is (nginx and
:mod:`portal.pagecache` never keep it). Everything else on it depends on few inputs:
the language, the gate's answer for the device (present or not, allowed, the mode),
the path with its query (the language links' ``next=``), and the site's fixed facts
(community, node name). So the page is rendered once per such key with a
placeholder where the token goes, and each request fills in its own token:
a string replacement instead of a template render (about 3.5 ms of Python here,
repeated for each of hundreds of phones arriving at once).

Rendered normally, never kept: a signed-in visitor (the footer names their
account), a message waiting to be shown (a flash), a problem to report, a device
with time left (the page shows it) or a long query string. The token is
HTML-escaped when filled in, as the template would have escaped it.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable

from flask import current_app, g, request, session
from markupsafe import escape

#: Where the cache lives in ``app.extensions``.
EXTENSION = "meshhub.captive.welcome"
#: Pages kept at most (languages x device states x paths); the oldest goes first.
MAX_PAGES = 64
#: A query string longer than this is rendered, not kept (nobody's link has one).
MAX_QUERY = 64


class WelcomePages:
    """Welcome pages by key, each with a placeholder for the CSRF token."""

    def __init__(self) -> None:
        #: Random per process, so no text a visitor sends can be mistaken for it.
        self.slot = f"csrf-slot-{secrets.token_hex(16)}"
        self._pages: dict[tuple[object, ...], str] = {}
        self._lock = threading.Lock()

    def page(self, key: tuple[object, ...], render: Callable[[Callable[[], str]], str],
             token: Callable[[], str]) -> str:
        """The page for ``key`` with ``token()`` filled in; ``render(csrf_token)`` renders
        it (once per key, with the placeholder as its token)."""
        with self._lock:
            shell = self._pages.get(key)
        if shell is None:
            shell = render(lambda: self.slot)
            if shell.count(self.slot) != 1:  # the template changed: do not guess
                return render(token)
            with self._lock:
                if len(self._pages) >= MAX_PAGES:
                    self._pages.pop(next(iter(self._pages)))
                self._pages[key] = shell
        return shell.replace(self.slot, str(escape(token())))


def pages() -> WelcomePages:
    """This app's welcome pages (made on first use)."""
    found = current_app.extensions.get(EXTENSION)
    if found is None:
        found = current_app.extensions.setdefault(EXTENSION, WelcomePages())
    return found  # type: ignore[no-any-return]


def shared_key(locale: str, gate: str, allowed: bool, mode: str,
               has_problem: bool, remaining: str | None) -> tuple[object, ...] | None:
    """What the welcome page depends on for this request, or None when it must be
    rendered for this visitor alone (see the module docstring)."""
    if has_problem or remaining is not None or getattr(g, "account", None):
        return None
    if session.get("_flashes") or len(request.query_string) > MAX_QUERY:
        return None
    return (locale, gate, allowed, mode, request.path, request.query_string)
