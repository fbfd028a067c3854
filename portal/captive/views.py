"""The captive pages: probe answers, the welcome page, "you're connected", the RFC 8908 API,
and the emergency notice (:mod:`node.broadcast`), which comes before all of them while the
gate holds a device back for it.

Every answer here depends on who asks, so each is ``Cache-Control: private, no-store``:
neither nginx's micro-cache nor a phone may keep one (a cached "success" would close a
stranger's sheet; a cached redirect would reopen it after acceptance).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from node.captive_probes import Probe, classify
from node.config import NodeConfig
from node.gate import GateError, GateUnavailable, NoGate
from portal import token_pages, welcome_file
from portal.captive.state import (
    ClientState,
    client_ip,
    client_state,
    from_status,
    gate_client,
    gate_memory,
    log,
    portal_url,
)

bp = Blueprint("captive", __name__)

NO_STORE = "private, no-store"


def _private(response: BaseResponse) -> BaseResponse:
    response.headers["Cache-Control"] = NO_STORE
    response.headers.pop("ETag", None)
    return response


def _redirect(location: str) -> BaseResponse:
    return _private(redirect(location, code=302))


def _joined(response: BaseResponse, seconds: int | None) -> BaseResponse:
    """Connect's answer; while the phone is let through, its welcome page is its own
    (it shows the time left), so nginx must not send it the page file for new phones."""
    if seconds:
        response.set_cookie(welcome_file.JOINED_COOKIE, "1", max_age=seconds, path="/welcome",
                            httponly=True, samesite="Lax")
    return _private(response)


def first_page(state: ClientState) -> str:
    """Where a held-back device is sent: the emergency notice if unread, else the welcome."""
    return portal_url("/emergency" if state.unread else "/welcome")


def probe_answer(probe: Probe, state: ClientState) -> BaseResponse:
    """Before acceptance (or an unread emergency notice): a redirect to the first page;
    after: exactly the OS's answer."""
    if not state.through:
        return _redirect(first_page(state))
    if probe.to_hub:
        return _redirect(portal_url("/"))
    response = Response(probe.body, status=probe.status, content_type=probe.content_type)
    if probe.status == 204:
        response.headers.pop("Content-Type", None)
        response.data = b""
    return _private(response)


def _own_addresses(config: NodeConfig) -> frozenset[str]:
    """This node's addresses a browser may name: its portal and mesh addresses, loopback."""
    from flask import current_app

    cached: frozenset[str] | None = current_app.extensions.get("meshhub.captive.own_addresses")
    if cached is None:
        from node.errors import ConfigError
        from node.net import address_plan

        addresses = {"127.0.0.1", "::1"}
        try:
            plan = address_plan(config)
            addresses |= {str(plan.portal_address), str(plan.mesh_address)}
        except (ConfigError, ValueError):
            pass  # no address plan (a laptop's demo): only loopback is surely ours
        cached = current_app.extensions["meshhub.captive.own_addresses"] = frozenset(addresses)
    return cached


def our_host(host: str, config: NodeConfig) -> bool:
    """Whether ``host`` names this portal: one of its addresses, localhost, or our domain.

    Another address (``http://203.0.113.7/``, which the gate brought here) is
    another site, like another name.
    """
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]").lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name)) in _own_addresses(config)
    except ValueError:
        pass
    domain = str(config.clients.domain).lower()
    return name in ("", "localhost") or name == domain or name.endswith("." + domain)


def intercept() -> ResponseReturnValue | None:
    """Runs before every request: answer probes, and send foreign hosts to the portal."""
    path = request.path
    host = request.host or ""
    probe = classify(host.rsplit(":", 1)[0], path, request.user_agent.string or "")
    if probe is not None:
        return probe_answer(probe, client_state())
    if our_host(host, current_app.config["NODE_CONFIG"]):
        return None
    # Another site's address (the gate's redirect, or DNS on an offline node).
    state = client_state()
    if state.gate in ("absent", "ungated"):
        return None  # no gate here, or not a resident's device: serve the page as asked
    return _redirect(portal_url("/") if state.through else first_page(state))


def _duration(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    from flask_babel import ngettext

    hours, minutes = divmod(max(seconds, 0) // 60, 60)
    if hours:
        return str(ngettext("%(num)d hour", "%(num)d hours", hours))
    return str(ngettext("%(num)d minute", "%(num)d minutes", max(minutes, 1)))


@bp.route("/welcome", methods=["GET", "POST"])
def welcome() -> ResponseReturnValue:
    """The house rules and one Connect button (a plain form: no JavaScript needed)."""
    problem = None
    if request.method == "POST":
        if not welcome_file.double_submitted(request):
            from portal.app import csrf

            csrf.protect()  # a page the portal rendered: its session's token (else a 400)
        try:
            status = gate_client().allow(client_ip())
            gate_memory().keep(client_ip(), status)
            if status.allowed:
                return _joined(redirect(url_for("captive.connected"), code=303),
                               status.seconds_remaining)
        except NoGate:
            return _private(redirect(url_for("captive.connected"), code=303))
        except GateUnavailable as exc:
            log.warning("captive: Connect: %s", exc)
            problem = _("The network’s gate did not answer. Please try again in a moment.")
        except GateError as exc:
            if exc.code in ("not-a-client", "bad-request"):
                return _private(redirect(url_for("captive.connected"), code=303))
            problem = (_("This node cannot see your device on its Wi-Fi. Reconnect to the "
                         "Wi-Fi and try again.") if exc.code == "unknown-device" else
                       _("The network’s gate did not answer. Please try again in a moment."))
        state = ClientState(False)
    elif (shared := request.environ.get(welcome_file.ENVIRON_KEY)) is not None:
        # The page file for every new phone (portal.welcome_file): nginx fills in the token.
        page = render_template("captive/welcome.html", state=shared, problem=None,
                               remaining=None, csrf_token=lambda: welcome_file.SLOT)
        return _private(Response(page))
    else:
        state = client_state()
        if state.unread:
            return _redirect(first_page(state))
    remaining = _duration(state.seconds_remaining)

    def render(token: Callable[[], str]) -> str:
        return render_template("captive/welcome.html", state=state, problem=problem,
                               remaining=remaining, csrf_token=token)

    key = token_pages.shared_key("welcome", state.gate, state.allowed, state.mode,
                                 personal=problem is not None or remaining is not None)
    return _private(Response(token_pages.filled(key, render), status=503 if problem else 200))


@bp.get("/connected")
def connected() -> ResponseReturnValue:
    """"You're connected": how long for, and the way to the hub."""
    state = client_state()
    if not state.through:
        return _private(redirect(first_page(state), code=303))
    page = render_template("captive/connected.html", state=state,
                           remaining=_duration(state.seconds_remaining))
    return _private(Response(page))


@bp.get("/api/captive")
def api() -> ResponseReturnValue:
    """The RFC 8908 Captive Portal API (announced by DHCP option 114, RFC 8910)."""
    state = client_state()
    body: dict[str, object] = {"captive": not state.through,
                               "user-portal-url": first_page(state),
                               "venue-info-url": portal_url("/about")}
    if state.through and state.seconds_remaining is not None:
        body["seconds-remaining"] = state.seconds_remaining
        body["can-extend-session"] = True
    response = Response(json.dumps(body), content_type="application/captive+json")
    return _private(response)


@bp.route("/emergency", methods=["GET", "POST"])
def emergency() -> ResponseReturnValue:
    """The emergency notice, first thing on every phone, and "I have read this" (a plain
    form: no JavaScript needed). Reading it lets an accepted phone through again."""
    from node.broadcast import current_broadcast
    from portal.db import get_store

    problem = None
    state = client_state()
    if request.method == "POST" and state.unread:
        try:
            status = gate_client().read(client_ip())
            gate_memory().keep(client_ip(), status)
            state = from_status(status)
        except GateUnavailable:
            problem = _("The network’s gate did not answer. Please try again in a moment.")
        except GateError:
            problem = _("This node cannot see your device on its Wi-Fi. Reconnect to the "
                        "Wi-Fi and try again.")
    if request.method == "POST" and problem is None:
        return _private(redirect(url_for("captive.connected") if state.through
                                 else first_page(state), code=303))
    store = get_store()
    notice_id = state.broadcast
    if notice_id is None:  # no gate here (a demo), or ungated: what the store has in force
        found = current_broadcast(store.path, store.clock())
        notice_id = found.notice if found else None
    notice = store.notice(notice_id) if notice_id else None

    def render(token: Callable[[], str]) -> str:
        return render_template("captive/emergency.html", notice=notice, state=state,
                               problem=problem, csrf_token=token)

    key = token_pages.shared_key("emergency", notice, bool(state.unread),
                                 personal=problem is not None)
    return _private(Response(token_pages.filled(key, render), status=503 if problem else 200))


__all__ = ["bp", "first_page", "from_status", "intercept", "probe_answer"]
