"""The technicians' side of the portal, under ``/technicians``: the mesh's health.

A table of every node (up or down, neighbours, clients, temperature, voltage,
disk, version, alerts), a page per node with history graphs, alerts and their
advice, and links, and a map of the mesh. Server-side SVG, no JavaScript.
Signed in with the ``technician`` role or above (``node.store.models.ROLES``).
See ``docs/technicians.md``.
"""

from __future__ import annotations

from functools import cache

from flask import Blueprint, Flask, Response
from flask.typing import ResponseReturnValue

__all__ = ["blueprint", "close", "register"]


def _private(response: Response) -> Response:
    """Signed-in pages about the network: never stored by nginx or the browser cache."""
    response.headers["Cache-Control"] = "no-store"
    return response


def _error_page(code: int) -> ResponseReturnValue:
    from flask import render_template

    return render_template("organisers/error.html", code=code, max_mb=0), code


def _forbidden(error: Exception) -> ResponseReturnValue:
    return _error_page(403)


def _not_found(error: Exception) -> ResponseReturnValue:
    return _error_page(404)


@cache
def blueprint() -> Blueprint:
    """The ``technicians`` blueprint (built once; an app registers it once)."""
    from portal.technicians import pages

    bp = pages.bp
    bp.after_request(_private)
    bp.register_error_handler(403, _forbidden)
    bp.register_error_handler(404, _not_found)
    return bp


def register(app: Flask) -> None:
    """Add the technicians' pages to ``app``."""
    app.register_blueprint(blueprint())


def close(app: Flask) -> None:
    """Stop the app's health gatherer, if one was started (tests, shutdown)."""
    from portal.technicians.pages import GATHERER_KEY

    gatherer = app.extensions.pop(GATHERER_KEY, None)
    if gatherer is not None:
        gatherer.close()
