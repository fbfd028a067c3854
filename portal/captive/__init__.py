"""The captive portal: every phone's sign-in sheet, and the residents' "Connect".

* probes of iOS/macOS, Android/ChromeOS, Windows, Firefox and NetworkManager
  (the one table in :mod:`node.captive_probes`, shared with `meshhub diag portal`),
  answered before any other view;
* ``/welcome`` (house rules and one Connect button), ``/connected``, and the RFC 8908
  API at ``/api/captive`` (:mod:`portal.captive.views`);
* the gate is asked over its Unix socket (:mod:`portal.captive.state`).

See ``docs/captive.md``.
"""

from __future__ import annotations

from flask import Flask

__all__ = ["register"]


def register(app: Flask) -> None:
    """Add the captive pages and the probe interception to ``app``."""
    from portal.captive.views import bp, intercept

    app.register_blueprint(bp)
    app.before_request_funcs.setdefault(None, []).insert(0, intercept)
