"""The welcome page as a file nginx sends, with a CSRF token nginx makes (double submit).

Every phone that joins opens ``/welcome`` first, all at once when a street joins
together (bench/burst.py). Rendered by the portal, even from a kept shell
(:mod:`portal.token_pages`), each such request still costs waitress and Flask
about 1 ms of CPU here and nginx's proxying 0.3 ms, some 25 ms on a Pi Zero 2 W
core; on a node with a gate, asking the gate about the phone costs the agent two
more processes (``ip neigh``, ``nft get element``: about 4 ms here). But a phone
that has just joined gets the same page as every other new phone but for its
form's token. So the renderer (:class:`portal.pagefiles.Renderer`) keeps that
page per language as ``<lang>/welcome@form.html``, with :data:`SLOT` where the
token goes, and nginx sends it (``images/nginx/meshhub.conf``, ``location =
/welcome``): it puts a token of 128 random bits in place of the slot
(``sub_filter``; the token is nginx's ``$request_id``, or the phone's own
:data:`TOKEN_COOKIE` when it already holds a well-formed one) and sets the same
token as the :data:`TOKEN_COOKIE` cookie (``HttpOnly``, ``SameSite=Strict``,
``Path=/welcome``). The Connect form then sends the token back, and the portal
accepts it when form and cookie hold the same token (:func:`double_submitted`):
a page on another site can neither read that cookie nor set it, and with
``SameSite=Strict`` a browser does not even send it with another site's form.
Pages the portal renders itself keep Flask-WTF's token from the session, as before.

nginx sends the file only when it is what the portal would answer: a GET or HEAD
without a query, in a language its maps can decide, to this node's own name, no
captive probe, nobody signed in or a message waiting (the private-pages cookie),
and not a phone that accepted here (:data:`JOINED_COOKIE`, set by Connect for the
time it was let through: its page says so and how long is left). And the file
exists only while the page is the same for every new phone: not while an
emergency broadcast is in force (the portal sends a phone that has not read it
there first), rendered again when the gate's mode changes or the gate appears or
goes (:func:`file_state`). Everything else, as before, is the portal's.
"""

from __future__ import annotations

import hmac
import re
import sqlite3
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Request

from node.agent_app import read_answer

if TYPE_CHECKING:
    from portal.captive.state import ClientState
    from portal.pagefiles import Renderer

#: Where the token goes in the file (nginx's ``sub_filter`` replaces it). Fixed, since
#: nginx's site names it; a page holding it more than once is not written.
SLOT = "meshhub-welcome-csrf-slot-5d0c9a7e"
#: The cookie nginx sets with the token (the form sends the same token back).
TOKEN_COOKIE = "meshhub_csrf"  # noqa: S105 - a cookie's name, not a secret
#: Set by Connect while the phone is let through: its welcome page is its own (time left).
JOINED_COOKIE = "meshhub_joined"
#: The file of each language, under the pages folder's ``<lang>/``.
FILE_NAME = "welcome@form.html"
#: ``environ`` key with the device state to render the file for (set only in-process:
#: a client's headers arrive as ``HTTP_*`` keys and cannot set it).
ENVIRON_KEY = "meshhub.welcome_file_state"
#: Seconds between two looks at the gate's presence, its mode and the broadcast.
CHECK_SECONDS = 1.0
_TOKEN = re.compile(r"[0-9a-f]{32}")


def double_submitted(request: Request) -> bool:
    """Whether this POST's form token and :data:`TOKEN_COOKIE` are the same token of
    nginx's making (32 hex digits), and an ``Origin`` header, if any, is this host."""
    form = request.form.get("csrf_token", "")
    cookie = request.cookies.get(TOKEN_COOKIE, "")
    if not (_TOKEN.fullmatch(form) and _TOKEN.fullmatch(cookie)):
        return False
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc.lower() != request.host.lower():
        return False
    return hmac.compare_digest(form, cookie)


def file_state(app: Any, config: Any, conn: sqlite3.Connection,
               now: float) -> ClientState | None:
    """The state every new phone's welcome page shows, or None when there is none
    (an emergency broadcast in force: a phone that has not read it goes there first)."""
    from node.broadcast import broadcast_in
    from node.gate.mode import effective_mode
    from portal.captive.state import ClientState, gate_client

    if not gate_client(app).present:
        return ClientState(True, None, "open", "absent")  # every device, as the view says
    try:
        if broadcast_in(conn, now) is not None:
            return None
    except sqlite3.Error:
        pass  # no database yet: nothing was ever broadcast
    mode = effective_mode(config)
    return ClientState(mode == "open", None, mode, "present")


def render(app: Any, lang: str, state: ClientState) -> bytes | None:
    """The welcome page of ``lang`` for ``state`` with :data:`SLOT` as its token, or None
    if it is not one page with one slot (then nginx leaves the page to the portal)."""
    from werkzeug.test import EnvironBuilder

    from portal.pagecache import EXTENSION

    builder = EnvironBuilder(path="/welcome", headers=[("Accept-Language", lang),
                                                       ("Host", "localhost")],
                             environ_base={"REMOTE_ADDR": "127.0.0.1", ENVIRON_KEY: state})
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    cache = app.extensions.get(EXTENSION)
    wsgi = cache.app if cache is not None else app.wsgi_app
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Any:
        status[:] = [line]
        return lambda data: None

    body = read_answer(wsgi(environ, start_response))
    if not status or not status[0].startswith("200") or body.count(SLOT.encode()) != 1:
        return None
    return body


class WelcomeFiles:
    """Keeps ``<lang>/welcome@form.html`` true for one renderer (called from its thread)."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self._state: object = ()  # what the files were rendered for; () = nothing yet
        self._next = 0.0
        self._generation = -1

    def names(self) -> Iterable[str]:
        """The files' names under the pages folder, one per language."""
        return (f"{lang}/{FILE_NAME}" for lang in self.renderer.languages)

    def check(self, conn: sqlite3.Connection, now: float) -> None:
        """Every :data:`CHECK_SECONDS`: render the files again if what they show changed
        or one is missing (every file is deleted when the day or the code changes);
        delete them while there is no page for everyone."""
        renderer = self.renderer
        if time.monotonic() < self._next and renderer.generation == self._generation:
            return  # nothing deleted since the last look (a broadcast arrives as a change)
        self._next = time.monotonic() + CHECK_SECONDS
        self._generation = renderer.generation
        state = file_state(renderer.app, renderer.config, conn, now)
        missing = state is not None and not all(
            (renderer.root / name).exists() for name in self.names())
        if state == self._state and not missing:
            return
        self.delete()
        if state is not None:
            for lang in renderer.languages:
                body = render(renderer.app, lang, state)
                if body is not None:
                    renderer.write_plain(f"{lang}/{FILE_NAME}", body)
        self._state = state

    def delete(self) -> None:
        """Remove every language's file (the portal answers meanwhile)."""
        for name in self.names():
            (self.renderer.root / name).unlink(missing_ok=True)
        self._state = ()


__all__ = ["ENVIRON_KEY", "JOINED_COOKIE", "SLOT", "TOKEN_COOKIE", "WelcomeFiles",
           "double_submitted", "file_state", "render"]
