"""The agent's one WSGI application: the health API and the sync protocol side by side.

Requests under ``/sync/`` go to the sync app (:mod:`node.sync.http`),
everything else to the health API (:mod:`node.health.api`). A tiny
dispatcher instead of a framework keeps the agent small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def compose(default: WSGIApp, mounts: dict[str, WSGIApp]) -> WSGIApp:
    """A WSGI app sending paths under each prefix (e.g. ``/sync/``) to its app, else ``default``.

    Paths are passed on unchanged (each app knows its full paths).
    """
    prefixes = sorted(mounts, key=len, reverse=True)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        for prefix in prefixes:
            if path.startswith(prefix):
                return mounts[prefix](environ, start_response)
        return default(environ, start_response)

    return app


def read_answer(result: Iterable[bytes]) -> bytes:
    """A WSGI app's whole answer as bytes, its iterable closed afterwards as PEP 3333 asks
    (for middleware that must see the body: to sign it, cache it or save it as a file)."""
    try:
        return b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
