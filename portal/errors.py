"""Friendly error pages (400, 403, 404, 405, 413, 429, 500) in the reader's language."""

from __future__ import annotations

from flask import Flask, render_template
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from node.errors import NotFound

#: Title and explanation shown for each status; others fall back to 500's text.
MESSAGES = {
    400: (_l("Something was wrong with that request"),
          _l("The page could not understand what was sent. Go back and try again.")),
    403: (_l("Not allowed"), _l("You do not have permission to see this page.")),
    404: (_l("Page not found"),
          _l("There is nothing here. It may have been removed, or the address may be "
             "mistyped.")),
    405: (_l("Not allowed"), _l("This page cannot be used that way.")),
    413: (_l("Too large"),
          _l("What you sent is larger than this node accepts. Try a smaller file.")),
    429: (_l("Too many attempts"),
          _l("Please wait a while before trying again.")),
    500: (_l("Something went wrong on this node"),
          _l("The problem has been logged. Please try again in a moment.")),
}
CSRF_MESSAGE = _l("The form had expired or came from another site. Please reload the page and "
                  "send it again.")


#: Headers of an HTTP error that the friendly page must keep (416's range, 405's methods).
KEPT_HEADERS = ("Allow", "Content-Range", "Retry-After", "WWW-Authenticate")


def _render(status: int, detail: object | None = None) -> tuple[str, int]:
    fallback = MESSAGES[400] if status < 500 else MESSAGES[500]
    title, message = MESSAGES.get(status, fallback)
    return render_template("error.html", status=status, title=title,
                           message=detail or message), status


def handle_http(error: HTTPException) -> ResponseReturnValue:
    """Any HTTP error raised by a view or by Flask itself, keeping its status and headers."""
    status = error.code or 500
    if status < 400:  # e.g. a redirect raised as an exception: not an error page
        return error
    body, status = _render(status)
    headers = error.get_response().headers
    return body, status, [(k, headers[k]) for k in KEPT_HEADERS if k in headers]


def handle_csrf(_error: CSRFError) -> tuple[str, int]:
    """A POST without a valid CSRF token."""
    return _render(400, CSRF_MESSAGE)


def handle_not_found(_error: NotFound) -> tuple[str, int]:
    """The store did not find the item asked for."""
    return _render(404)


def handle_internal(_error: InternalServerError) -> tuple[str, int]:
    """An unexpected failure (already logged by Flask)."""
    return _render(500)


def init_app(app: Flask) -> None:
    """Register the error pages on ``app``."""
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(NotFound, handle_not_found)
    app.register_error_handler(InternalServerError, handle_internal)
    app.register_error_handler(HTTPException, handle_http)
