"""The organisers' side of the portal, under ``/organisers``.

One module per area, each a nested blueprint of the ``organisers``
blueprint: sign-in (:mod:`portal.auth`), the dashboard, posts (listings and
notices), the library, moderation, the audit and accounts. Roles are checked
on the server for every action (:func:`portal.auth.login_required`), and the
hub checks them again.
"""

from __future__ import annotations

from functools import cache

from flask import Blueprint, Flask, Response, render_template
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from node.errors import NotFound, PermissionDenied

__all__ = ["blueprint", "register"]


def _private(response: Response) -> Response:
    """Organisers' pages are personal: never stored by nginx or the browser cache."""
    response.headers["Cache-Control"] = "no-store"
    return response


def _error_page(code: int) -> ResponseReturnValue:
    from portal.organisers.services import node_config

    return render_template("organisers/error.html", code=code,
                           max_mb=node_config().portal.upload_max_mb), code


def category_label(category: str) -> str:
    """A listing category's translated name, for pages."""
    from portal.residents.labels import CATEGORY_LABELS

    return str(CATEGORY_LABELS.get(category, category))


def role_label(role: str) -> str:
    """A role's translated name, for pages."""
    from portal.organisers.forms import role_choices

    return str(dict(role_choices()).get(role, role))


def _forbidden(error: Exception) -> ResponseReturnValue:
    return _error_page(403)


def _not_found(error: Exception) -> ResponseReturnValue:
    return _error_page(404)


def _too_large(error: HTTPException) -> ResponseReturnValue:
    return _error_page(413)


@cache
def blueprint() -> Blueprint:
    """The ``organisers`` blueprint with every area nested in it (built once)."""
    from portal import auth
    from portal.organisers import (
        accounts,
        audit,
        broadcast,
        dashboard,
        library,
        moderation,
        network,
        posts,
        updates,
    )

    bp = Blueprint("organisers", __name__, url_prefix="/organisers")
    for child in (auth.bp, dashboard.bp, posts.bp, library.bp, moderation.bp, audit.bp,
                  accounts.bp, network.bp, updates.bp, broadcast.bp):
        bp.register_blueprint(child)
    bp.after_request(_private)
    bp.add_app_template_global(auth.role_at_least, "role_at_least")
    bp.add_app_template_global(role_label, "role_label")
    bp.add_app_template_global(category_label, "category_label")
    bp.register_error_handler(PermissionDenied, _forbidden)
    bp.register_error_handler(403, _forbidden)
    bp.register_error_handler(NotFound, _not_found)
    bp.register_error_handler(404, _not_found)
    bp.register_error_handler(413, _too_large)
    return bp


def register(app: Flask) -> None:
    """Add the organisers' pages to ``app``, and the technicians' (they share the sign-in)."""
    from portal import technicians

    app.register_blueprint(blueprint())
    technicians.register(app)
