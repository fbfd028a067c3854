"""The portal's access to the node's store, hub and library files.

One :class:`node.store.Store` serves the whole process (it hands each
waitress thread its own SQLite connection), so it is opened on first use
and closed with :func:`close` when the server stops. Views call
:func:`get_store`, :func:`get_hub` and :func:`get_blobs`; the request's
``g`` caches them. Tests may set ``HUB_CLOCK`` (a ``() -> float``) and
``PASSWORD_HASHER`` in ``test_config``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TypeVar

from flask import Flask, abort, current_app, g

from node.blobs import BlobStore
from node.hub import Hub, open_hub
from node.store import Store

__all__ = ["close", "found", "get_blobs", "get_hub", "get_store", "init_app", "services"]

T = TypeVar("T")
_EXTENSION = "meshhub.services"
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Services:
    """The opened store and the hub over it."""

    store: Store
    hub: Hub

    @property
    def blobs(self) -> BlobStore:
        """Where library files live (content-addressed by SHA-256)."""
        return self.hub.blobs


def services(app: Flask | None = None) -> Services:
    """The app's store and hub, opened on first use (thread-safe)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    opened: Services | None = app.extensions.get(_EXTENSION)
    if opened is None:
        with _LOCK:
            opened = app.extensions.get(_EXTENSION)
            if opened is None:
                store, hub = open_hub(app.config["NODE_CONFIG"],
                                      clock=app.config.get("HUB_CLOCK"),
                                      password_hasher=app.config.get("PASSWORD_HASHER"))
                opened = Services(store, hub)
                app.extensions[_EXTENSION] = opened
    return opened


def get_store() -> Store:
    """This request's store (read API: listings, notices, library, search ...)."""
    if "meshhub_store" not in g:
        g.meshhub_store = services().store
    return g.meshhub_store


def get_hub() -> Hub:
    """This request's :class:`node.hub.Hub` (validated, permission-checked actions)."""
    if "meshhub_hub" not in g:
        g.meshhub_hub = services().hub
    return g.meshhub_hub


def get_blobs() -> BlobStore:
    """The library's file store."""
    return get_hub().blobs


def found(item: T | None) -> T:
    """``item``, or a 404 page when the store has no such item (unknown or deleted)."""
    if item is None:
        abort(404)
    return item


def close(app: Flask) -> None:
    """Close the app's store and session store and stop its threads (the technicians'
    health gatherer): when the server stops, or after a test."""
    from portal import technicians
    from portal.auth import close_sessions

    technicians.close(app)
    close_sessions(app)
    with _LOCK:
        opened: Services | None = app.extensions.pop(_EXTENSION, None)
    for middleware in ("meshhub.pagecache", "meshhub.zimfast", "meshhub.searchcache",
                       "meshhub.dashboards", "meshhub.signed_files"):
        found = app.extensions.get(middleware)
        if found is not None:
            found.close()
    if opened is not None:
        opened.store.close()


def _forget_request_objects(_exc: BaseException | None) -> None:
    g.pop("meshhub_store", None)
    g.pop("meshhub_hub", None)


def init_app(app: Flask) -> None:
    """Register the per-request teardown (the store itself lives as long as the app)."""
    app.teardown_appcontext(_forget_request_objects)
