"""The portal's application factory and its CSRF extension.

:func:`create_app` is the application factory (Flask's ``flaskr`` pattern):
defaults first, then the node's ``node.toml``, then ``test_config``; one
blueprint per area. The portal reads and writes only through ``node.store``
and :class:`node.hub.Hub` (see :mod:`portal.db`).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from node.config import NodeConfig, find_config, load_config
from node.timing import (
    REPORT_MAX_PER_WINDOW,
    REPORT_WINDOW_SECONDS,
    SUBMIT_MAX_PER_WINDOW,
    SUBMIT_WINDOW_SECONDS,
)

__all__ = ["create_app", "csrf"]

#: CSRF protection for every POST form (residents' and organisers').
csrf = CSRFProtect()


def create_app(test_config: dict[str, Any] | None = None, *,
               config: NodeConfig | None = None) -> Flask:
    """Build the portal for one node.

    ``config`` is the node's configuration (default: the ``node.toml`` named by
    ``$MESHHUB_CONFIG``, else ``/etc/meshhub/node.toml``); ``test_config``
    overrides Flask settings, for tests only.
    """
    from portal import caching, captive, db, errors, i18n, organisers, pagecache, security
    from portal.residents import register_residents, zimfast
    from portal.residents.zim import register_library

    if config is None:
        config = load_config(find_config())
    app = Flask("portal")  # the package: templates, static files and translations beside it
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(
        SECRET_KEY=security.load_or_create_secret(data_dir),
        NODE_CONFIG=config,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="meshhub_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=config.organisers.session_hours),
        MAX_CONTENT_LENGTH=config.portal.upload_max_mb * 1024 * 1024,
        PAGE_SIZE=config.portal.page_size,
        SUBMIT_MAX_PER_WINDOW=SUBMIT_MAX_PER_WINDOW,
        SUBMIT_WINDOW_SECONDS=SUBMIT_WINDOW_SECONDS,
        REPORT_MAX_PER_WINDOW=REPORT_MAX_PER_WINDOW,
        REPORT_WINDOW_SECONDS=REPORT_WINDOW_SECONDS,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        WTF_CSRF_SSL_STRICT=False,  # the mesh serves plain HTTP; SameSite guards origin
    )
    if test_config:
        app.config.from_mapping(test_config)
    if config.portal.behind_proxy:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # nginx sets both headers itself (one hop): the client's address, and whether
        # the client came over HTTPS (organisers' session cookies are then Secure).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]

    csrf.init_app(app)
    # Connect takes a token nginx made (double submit) or the session's: the view checks
    # (portal.welcome_file.double_submitted, else csrf.protect()).
    csrf.exempt("portal.captive.views.welcome")
    caching.init_app(app)  # registered first: its after_request runs last
    security.init_app(app)
    i18n.init_app(app)
    db.init_app(app)
    errors.init_app(app)
    register_residents(app)
    register_library(app)  # ZIM encyclopaedias (/library/<id>/zim/) and OPDS (/opds)
    captive.register(app)  # phones' probes, /welcome, /api/captive (portal/captive/)
    app.context_processor(_node_context)
    organisers.register(app)  # sign-in, posts, library, moderation, accounts, audit
    pagecache.init_app(app)  # answers repeated anonymous pages from memory
    zimfast.init_app(app)  # encyclopaedia entries without the whole Flask request
    security.guard_host(app)  # outermost: a Host no URL can be built for gets a plain 400
    return app


def _node_context() -> dict[str, Any]:
    """Facts every template may show: the community, this node, the time, label maps."""
    from flask import current_app

    from portal.residents.labels import CATEGORY_LABELS, MEDIA_LABELS

    config: NodeConfig = current_app.config["NODE_CONFIG"]
    clients = config.clients
    return {"current_app": current_app, "community": config.node.community,
            "node_name": config.node.name, "node_location": config.node.location,
            # The name every node of the mesh answers for the hub (dnsmasq): what a printed
            # page gives, whichever node or address it was printed from.
            "hub_url": f"http://{clients.hub_name}.{clients.domain}/",
            "now": int(time.time()),
            "category_labels": CATEGORY_LABELS, "media_labels": MEDIA_LABELS}
