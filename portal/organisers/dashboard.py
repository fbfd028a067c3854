"""The organisers' start page: figures, what waits for a decision, recent actions.

The page is every organiser's first after signing in and the one they come back
to, so it is kept, rendered, per account, language and URL, until it could differ
from a fresh render (:class:`Dashboards`): about 6 ms of Python with 10,000
listings (most of it Jinja), against a string replacement.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, g, render_template, request, session
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_wtf.csrf import generate_csrf
from markupsafe import escape

from portal.auth import login_required, role_at_least
from portal.caching import CACHE_SECONDS_KEY
from portal.organisers.audit import audit_rows
from portal.organisers.forms import ActionForm
from portal.organisers.services import store
from portal.pagecache import ChangeWatcher, LazyWatcher, store_watcher

bp = Blueprint("dashboard", __name__)

#: Recent actions shown on the dashboard (the audit page has them all).
RECENT_ACTIONS = 10
#: Where the app keeps its :class:`Dashboards`.
EXTENSION = "meshhub.dashboards"
#: Dashboards kept at most (accounts x languages); the least recently used goes first.
MAX_PAGES = 32


@dataclass(frozen=True)
class _Kept:
    version: int  # PRAGMA data_version when the render began
    until: float | None  # the next expiry moment (store clock) when the render began
    born: float  # time.monotonic() when the render began
    html: str  # with the slot where the session's CSRF token goes


class Dashboards:
    """Rendered dashboards, each used only while a fresh render would be the same.

    A dashboard shows the account (its name, role, menu), figures and the latest
    actions read from the content database, node names from the registry, and
    the sign-out form's CSRF token. So one is kept per account (the whole
    account row: a new role or name is another key), language, path and query,
    with a random slot for the token, and used only while

    * no commit was made to the content database since the render began
      (``PRAGMA data_version`` on a never-writing connection:
      :class:`portal.pagecache.ChangeWatcher`), by any process;
    * no listing or notice has expired since (its figure counts live listings);
    * it is younger than ``portal.cache_seconds`` (the registry's node names, which
      live outside the database; no keeping at all when that is 0).

    A dashboard with a message waiting (a flash) is rendered for that request alone.
    Each request gets its own session's token filled in (HTML-escaped).
    """

    def __init__(self, watcher_factory: Callable[[], ChangeWatcher], ttl: float) -> None:
        """Keep dashboards checked by ``watcher_factory()``'s watcher, ``ttl`` seconds at most."""
        #: Random per process, so no text on the page can be mistaken for it.
        self.slot = f"csrf-slot-{secrets.token_hex(16)}"
        self.ttl = ttl
        self._watcher = LazyWatcher(watcher_factory)
        self._pages: OrderedDict[tuple[Hashable, ...], _Kept] = OrderedDict()
        self._lock = threading.Lock()

    def page(self, key: tuple[Hashable, ...], render: Callable[[Callable[[], str]], str]) -> str:
        """The dashboard for ``key`` with this session's token; ``render(csrf_token)``
        renders it (with the slot as its token when it is to be kept)."""
        if self.ttl <= 0 or session.get("_flashes"):
            return render(generate_csrf)
        watcher = self._watcher.get()
        version = watcher.version()
        with self._lock:
            kept = self._pages.get(key)
            if kept is not None and (kept.version != version or time.monotonic() - kept.born
                                     >= self.ttl or (kept.until is not None
                                                     and watcher.now() >= kept.until)):
                kept = None
            if kept is not None:
                self._pages.move_to_end(key)
        if kept is None:
            born = time.monotonic()
            until = watcher.next_expiry(version)  # before rendering: errs on the early side
            html = render(lambda: self.slot)
            if html.count(self.slot) != 1:  # the template changed: do not guess
                return render(generate_csrf)
            kept = _Kept(version, until, born, html)
            with self._lock:
                self._pages[key] = kept
                self._pages.move_to_end(key)
                while len(self._pages) > MAX_PAGES:
                    self._pages.popitem(last=False)
        return kept.html.replace(self.slot, str(escape(generate_csrf())))

    def close(self) -> None:
        """Forget every dashboard and close the watcher's connection."""
        with self._lock:
            self._pages.clear()
        self._watcher.close()


def dashboards(app: Any) -> Dashboards:
    """The app's kept dashboards (made on first use)."""
    found: Dashboards | None = app.extensions.get(EXTENSION)
    if found is None:
        found = app.extensions.setdefault(EXTENSION, Dashboards(
            store_watcher(app), float(app.config.get(CACHE_SECONDS_KEY, 0))))
    return found


@bp.get("/")
@login_required()
def index() -> ResponseReturnValue:
    """Counts, pending submissions (for moderators) and the latest actions."""
    def render(csrf_token: Callable[[], str]) -> str:
        reads = store()
        counts = reads.dashboard_counts()
        pending = reads.submissions("pending") if role_at_least(g.account, "moderator") else []
        recent = audit_rows(reads.recent_audit(RECENT_ACTIONS))
        return render_template("organisers/dashboard.html", counts=counts, pending=pending,
                               recent=recent, action_form=ActionForm(), csrf_token=csrf_token)

    key = (g.account, str(get_locale()), request.path, request.query_string)
    return dashboards(current_app).page(key, render)
