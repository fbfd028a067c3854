"""The portal's secret key and the security headers on every response.

The secret key is generated on the node at first start (never a default
shipped with the code) and kept in ``data_dir/portal-secret.key``, mode 0600.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from markupsafe import Markup
from werkzeug.wrappers import Response as PlainResponse

from node.atomic import atomic_write
from node.errors import ConfigError

SECRET_FILE_NAME = "portal-secret.key"  # noqa: S105 - a file name, not a secret

#: What every page may load: only this node, never a third party.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
    "frame-ancestors 'none'; object-src 'self'; media-src 'self'"
)
#: For library files shown inline (a PDF in an ``<object>``): the node's own
#: pages may embed them, nobody else's.
EMBEDDABLE_POLICY = CONTENT_SECURITY_POLICY.replace(
    "frame-ancestors 'none'", "frame-ancestors 'self'")


def load_or_create_secret(data_dir: Path) -> str:
    """The portal's secret key, created (64 hex digits, mode 0600) if absent.

    Creation is race-free: the key is written to a private temporary file and
    hard-linked into place, so two processes starting at once agree on one key.
    """
    path = data_dir / SECRET_FILE_NAME
    if not path.exists():
        fresh = data_dir / f".{SECRET_FILE_NAME}.{os.getpid()}.new"
        atomic_write(fresh, secrets.token_hex(32) + "\n", mode=0o600)
        try:
            os.link(fresh, path)
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                fresh.unlink()
    try:
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the portal's secret key ({exc}); "
                           "check its owner and mode, or delete it to create a new one"]) from None
    if len(key) < 32:
        raise ConfigError([f"{path}: the portal's secret key is too short; "
                           "delete the file and restart to create a new one"])
    return key


def set_security_headers(response: Response) -> Response:
    """Add the CSP and the other protective headers unless a view already set them."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


class HostGuard:
    """WSGI middleware: a ``Host`` that cannot name a host gets a plain 400.

    A name with an empty label (``.hub.mesh``, ``a..b``) or a label over 63
    characters cannot be IDNA-encoded; Flask then cannot build any URL, not
    even for its error page, and answered 500 with a traceback in the log.
    Browsers never send such a name, so the answer is a short plain text.
    """

    def __init__(self, app: Any) -> None:
        """Wrap the WSGI application ``app``."""
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Answer 400 for a host name that cannot be encoded, else pass on."""
        name = str(environ.get("HTTP_HOST") or "").partition(":")[0]
        try:
            name.encode("idna")
        except UnicodeError:
            response = PlainResponse("Bad Request: the Host header is not a valid host name.\n",
                                     status=400, mimetype="text/plain")
            set_security_headers(response)  # type: ignore[arg-type]
            response.headers["Cache-Control"] = "no-store"
            return response(environ, start_response)
        return self.app(environ, start_response)


def sanitised(html: str) -> Markup:
    """Rendered Markdown from the store, marked safe for templates (``|sanitised``).

    Only for the store's ``*_html`` fields: node.markdown made them from the
    Markdown through markdown-it (raw HTML off) and the nh3 allow-list when the
    item was stored, so they are already safe to put in a page as they are.
    """
    return Markup(html)  # noqa: S704 - sanitised by node.markdown when stored


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed session cookie, marked ``Secure`` when it was set over HTTPS.

    An organiser who signs in over HTTPS (nginx sends them there when the node has
    a certificate) gets a cookie their browser never sends over plain HTTP, where a
    listener on the open Wi-Fi could copy it; residents' pages stay on HTTP.
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        """``SESSION_COOKIE_SECURE``, or whether this request came over HTTPS."""
        return bool(super().get_cookie_secure(app)) or request.is_secure


def init_app(app: Flask) -> None:
    """Register the security headers on every response of ``app``, and ``|sanitised``.

    (:func:`guard_host` is applied separately, after every other middleware.)
    """
    app.after_request(set_security_headers)
    app.jinja_env.filters["sanitised"] = sanitised
    app.session_interface = SessionCookies()


def guard_host(app: Flask) -> None:
    """Put :class:`HostGuard` outermost around ``app``'s WSGI application."""
    app.wsgi_app = HostGuard(app.wsgi_app)  # type: ignore[method-assign]
