"""Organisers' sign-in and sign-out, the session that follows, and role checks.

The session cookie (signed by Flask, HttpOnly and SameSite set by the app
factory) holds the account name, a random session token and an HMAC of the
account's password hash. The session itself lives on the node
(:mod:`portal.sessions`): signing out deletes it, so a copied cookie stops
working; it ends after ``organisers.session_hours`` without use and, used or
not, ``organisers.session_max_hours`` after sign-in. Admin actions also want
the password typed within the last ``organisers.reauth_minutes``
(:func:`login_required` sends the admin to :func:`confirm` first). Every
request that carries a session re-reads the account, so an account that is
disabled, or whose password changed since that sign-in (on any node), is
signed out at its next request. Failed sign-ins are counted per account and per client address
with :class:`portal.ratelimit.RateLimiter`; while either is over the limit,
even the right password is refused (otherwise the limit would leak whether a
guess was right).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import threading
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import ngettext

from node.store.models import ROLES, Account
from portal.i18n import here, safe_next
from portal.organisers.forms import ActionForm, ConfirmForm, SignInForm
from portal.organisers.services import hub, node_config
from portal.organisers.services import store as content_store
from portal.ratelimit import RateLimiter
from portal.sessions import FILE_NAME, SessionStore

log = logging.getLogger("meshhub.portal.auth")

bp = Blueprint("auth", __name__)

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])

#: Session keys owned by this module.
_NAME, _TOKEN, _PW = "organiser", "organiser_token", "organiser_pw"
#: Record the "last seen" time at most this often (one write per minute, not per page).
_SEEN_RESOLUTION_S = 60
#: app.extensions key of the (per-account, per-client) sign-in limiters.
LIMITS_KEY = "meshhub.signin_limits"
#: app.extensions key of the node's :class:`~portal.sessions.SessionStore`.
SESSIONS_KEY = "meshhub.sessions"
_SESSIONS_LOCK = threading.Lock()


# --- rate limits -------------------------------------------------------------

def signin_limits(app: Flask | None = None) -> tuple[RateLimiter, RateLimiter]:
    """The (per-account, per-client) failed-sign-in limiters of this app.

    Created on first use from ``organisers.signin_max_attempts`` and
    ``organisers.signin_window_minutes``; tests may replace them.
    """
    app = app or cast(Flask, current_app._get_current_object())  # type: ignore[attr-defined]
    limits = app.extensions.get(LIMITS_KEY)
    if limits is None:
        attempts = int(node_config().organisers.signin_max_attempts)
        window = 60.0 * int(node_config().organisers.signin_window_minutes)
        limits = (RateLimiter(attempts, window), RateLimiter(attempts, window))
        app.extensions[LIMITS_KEY] = limits
    return cast(tuple[RateLimiter, RateLimiter], limits)


def account_key(name: str) -> str:
    """The rate limiters' key for an account name (case-insensitive)."""
    return "account:" + name.strip().casefold()


def _client_key() -> str:
    # request.remote_addr is the real client: the app factory applies ProxyFix
    # (one hop) only when portal.behind_proxy is set.
    return "client:" + (request.remote_addr or "unknown")


# --- session -------------------------------------------------------------------

def _password_tag(account: Account) -> str:
    """A keyed digest of the password hash: changes whenever the password does."""
    key = str(current_app.secret_key or "").encode()
    return hmac.new(key, account.password_hash.encode(), hashlib.sha256).hexdigest()[:32]


def sessions(app: Flask | None = None) -> SessionStore:
    """The node's session store (``data_dir/portal-sessions.sqlite3``), opened on first use.

    Its clock is the app's ``HUB_CLOCK`` when a test sets one.
    """
    app = app or cast(Flask, current_app._get_current_object())  # type: ignore[attr-defined]
    store = app.extensions.get(SESSIONS_KEY)
    if store is None:
        with _SESSIONS_LOCK:
            store = app.extensions.get(SESSIONS_KEY)
            if store is None:
                data_dir = app.config["NODE_CONFIG"].data_dir
                store = SessionStore(data_dir / FILE_NAME, clock=app.config.get("HUB_CLOCK"))
                app.extensions[SESSIONS_KEY] = store
    return cast(SessionStore, store)


def close_sessions(app: Flask) -> None:
    """Close the app's session store, if it was opened (when the server stops)."""
    with _SESSIONS_LOCK:
        store = app.extensions.pop(SESSIONS_KEY, None)
    if store is not None:
        store.close()


def _limits_s() -> tuple[int, int]:
    """(idle, absolute) session limits in seconds, from node.toml."""
    return (3600 * int(node_config().organisers.session_hours),
            3600 * int(node_config().organisers.session_max_hours))


def start_session(account: Account) -> None:
    """Sign ``account`` in on this browser, in a fresh session (no fixation)."""
    store = sessions()
    old = session.get(_TOKEN)
    if old:
        store.end(str(old))
    idle, lifetime = _limits_s()
    store.purge(idle_s=idle, lifetime_s=lifetime)
    session.clear()
    session.permanent = True
    session[_NAME] = account.name
    session[_TOKEN] = store.start(account.name)
    session[_PW] = _password_tag(account)


def end_session() -> None:
    """End this browser's session on the node and forget everything in its cookie."""
    token = session.get(_TOKEN)
    if token:
        sessions().end(str(token))
    session.clear()


def end_other_sessions(account_name: str) -> int:
    """End every session of ``account_name`` on this node except this browser's."""
    return sessions().end_account(account_name, keep=session.get(_TOKEN))


def confirmed_recently() -> bool:
    """Whether this session's password was typed within ``organisers.reauth_minutes``."""
    row = g.get("session_row")
    if row is None:
        return False
    window = 60 * int(node_config().organisers.reauth_minutes)
    return sessions().now() - row.auth_at <= window


def _has_session_cookie() -> bool:
    return current_app.config.get("SESSION_COOKIE_NAME", "session") in request.cookies


@bp.before_app_request
def load_account() -> None:
    """Set ``g.account`` to the signed-in, still valid account, or ``None``.

    Anonymous visitors without a cookie do not touch the session at all, so
    their pages stay cacheable (no ``Vary: Cookie``).
    """
    g.account = None
    g.session_row = None
    if not _has_session_cookie() or _NAME not in session:
        return
    name = session[_NAME]
    token = str(session.get(_TOKEN, ""))
    store = sessions()
    row = store.get(token) if token else None
    try:
        account = content_store().account(name)
    except LookupError:
        account = None
    now = store.now()
    idle, lifetime = _limits_s()
    reason = None
    if row is None or row.account != name:
        reason = "session ended"
    elif account is None:
        reason = "account no longer exists"
    elif account.disabled:
        reason = "account disabled"
    elif not hmac.compare_digest(str(session.get(_PW, "")), _password_tag(account)):
        reason = "password changed"
    elif now - row.seen_at > idle or now - row.created_at > lifetime:
        reason = "session expired"
    if reason is not None or row is None:  # (no row: reason says so)
        log.info("signing out %s: %s", name, reason)
        end_session()
        g.signed_out_reason = reason
        return
    if now - row.seen_at >= _SEEN_RESOLUTION_S:
        store.touch(token)
    g.account = account
    g.session_row = row


#: A cookie that says "this browser's pages are its own": set while someone is signed
#: in or a message waits to be shown. nginx sends residents' page files only to
#: browsers without it (images/nginx/meshhub.conf); the session cookie alone does
#: not decide, since every resident who opened a form (the welcome page's Connect
#: button, say) holds one for its CSRF token, and their pages are everyone's.
PRIVATE_COOKIE = "meshhub_private"


@bp.after_app_request
def mark_private(response: Response) -> Response:
    """Set :data:`PRIVATE_COOKIE` while signed in or flashing; delete it otherwise."""
    wanted = _has_session_cookie() and (g.get("account") is not None
                                        or bool(session.get("_flashes")))
    held = request.cookies.get(PRIVATE_COOKIE) == "1"
    if wanted and not held:
        response.set_cookie(PRIVATE_COOKIE, "1", httponly=True, samesite="Lax",
                            secure=request.is_secure)
    elif held and not wanted:
        response.delete_cookie(PRIVATE_COOKIE, httponly=True, samesite="Lax")
    return response


def role_at_least(account: Account | None, min_role: str) -> bool:
    """Whether ``account`` holds ``min_role`` or a more powerful one."""
    if account is None or account.role not in ROLES:
        return False
    return ROLES.index(account.role) >= ROLES.index(min_role)


def login_required(min_role: str = "organiser") -> Callable[[F], F]:
    """Decorate a view: anonymous visitors go to sign-in, too-weak roles get 403.

    ``min_role`` is one of :data:`~node.store.models.ROLES`; ``"technician"``
    lets in every signed-in account (the technicians' pages, one's password).
    """
    if min_role not in ROLES:
        raise ValueError(f"unknown role {min_role!r}; expected one of {', '.join(ROLES)}")

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            if g.get("account") is None:
                if g.get("signed_out_reason") == "session expired":
                    flash(_("Your session expired. Please sign in again."), "info")
                elif g.get("signed_out_reason"):
                    flash(_("You have been signed out. Please sign in again."), "info")
                target = here() if request.method == "GET" else None
                return redirect(url_for("organisers.auth.sign_in", next=target))
            if not role_at_least(g.account, min_role):
                abort(403)
            if min_role == "admin" and not confirmed_recently():
                # An admin action wants the password typed again lately: a cookie
                # carried off an open network must not be enough to hand out roles.
                target = here() if request.method == "GET" else _referrer_path()
                return redirect(url_for("organisers.auth.confirm", next=target))
            return view(*args, **kwargs)

        return cast(F, wrapped)

    return decorator


def _referrer_path() -> str | None:
    """The local page a POST came from (to return to after confirming), if any."""
    referrer = request.referrer or ""
    parts = urlsplit(referrer)
    if parts.netloc and parts.netloc != request.host:
        return None
    return (parts.path + ("?" + parts.query if parts.query else "")) or None


def _safe_next(target: str | None) -> str:
    """A local path to continue to after sign-in (never another site), else the dashboard."""
    path = safe_next(target) if target else "/"
    return url_for("organisers.dashboard.index") if path == "/" else path


def _wait_message(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return ngettext(
        "Too many failed sign-ins. Please wait %(num)d minute before trying again.",
        "Too many failed sign-ins. Please wait %(num)d minutes before trying again.",
        minutes,
    )


# --- views --------------------------------------------------------------------

@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    """Show the sign-in form; check name and password, within the rate limits."""
    form = SignInForm()
    next_url = _safe_next(request.values.get("next"))
    if g.get("account") is not None and request.method == "GET":
        return redirect(next_url)
    if not form.validate_on_submit():
        return render_template("organisers/sign_in.html", form=form, next=next_url,
                               error=None)
    name = (form.name.data or "").strip()
    per_account, per_client = signin_limits()
    akey, ckey = account_key(name), _client_key()
    wait = max(per_account.retry_after(akey), per_client.retry_after(ckey))
    if wait > 0:
        log.warning("sign-in refused for %r from %s: rate limited", name, request.remote_addr)
        response = current_app.make_response((
            render_template("organisers/sign_in.html", form=form, next=next_url,
                            error=_wait_message(wait)),
            429,
        ))
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    account = hub().authenticate(name, form.password.data or "")
    if account is None:
        per_account.hit(akey)
        per_client.hit(ckey)
        log.warning("failed sign-in for %r from %s", name, request.remote_addr)
        form.password.data = ""
        return render_template("organisers/sign_in.html", form=form, next=next_url,
                               error=_("That account name and password do not match."))
    # Only the account's counter is reset: a client that guesses at many
    # accounts must not clear its own counter by signing in to one it owns.
    per_account.reset(akey)
    start_session(account)
    if not role_at_least(account, "organiser") and next_url == _safe_next(None):
        next_url = url_for("technicians.index")  # a technician's home: the mesh's health
    log.info("%s signed in from %s", account.name, request.remote_addr)
    flash(_("Signed in as %(name)s.", name=account.display_name or account.name), "success")
    return redirect(next_url)


@bp.route("/sign-out", methods=["POST"])
def sign_out() -> ResponseReturnValue:
    """Sign out (a POST with a CSRF token, so no other site can sign you out)."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    if g.get("account") is not None:
        log.info("%s signed out", g.account.name)
    end_session()
    flash(_("You are signed out."), "success")
    return redirect(url_for("organisers.auth.sign_in"))


@bp.route("/confirm", methods=["GET", "POST"])
def confirm() -> ResponseReturnValue:
    """Ask a signed-in admin for their password again before an admin action."""
    if g.get("account") is None:
        return redirect(url_for("organisers.auth.sign_in", next=request.values.get("next")))
    form = ConfirmForm()
    next_url = _safe_next(request.values.get("next"))
    error = None
    if form.validate_on_submit():
        me = g.account.name
        per_account, _per_client = signin_limits()
        key = account_key(me)
        wait = per_account.retry_after(key)
        if wait > 0:
            error = _wait_message(wait)
        elif hub().authenticate(me, form.password.data or "") is None:
            per_account.hit(key)
            log.warning("wrong password confirming %r from %s", me, request.remote_addr)
            error = _("That is not your password.")
        else:
            sessions().touch(str(session.get(_TOKEN, "")), authenticated=True)
            return redirect(next_url)
    return render_template("organisers/confirm.html", form=form, next=next_url, error=error)
