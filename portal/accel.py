"""Hand library file bodies to nginx (``X-Accel-Redirect``) instead of Python.

The portal still decides everything about a download — whether the item
exists, its type, its safe file name — but a Pi should not push a 100 MB
file through a Python thread when nginx can ``sendfile`` it, with Range
support, at the speed of the link. The pattern is Rack::Sendfile's: nginx
asks for it with two request headers that it always sets itself (a resident
cannot inject them through nginx)::

    X-Sendfile-Type: X-Accel-Redirect
    X-Accel-Mapping: /var/lib/meshhub/library/=/_meshhub_library/

and for a response carrying a file under the mapped directory the portal
answers with an empty body and ``X-Accel-Redirect: /_meshhub_library/ab/...``;
nginx then serves that internal location (``images/nginx/meshhub.conf``).

The switch is the Flask config key ``MESHHUB_X_ACCEL`` (default: the node's
``portal.behind_proxy``): with the portal listening on loopback only behind
nginx, these headers can come only from nginx. Without the switch, or
without the headers, files go out through Python as before.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, current_app, request

#: Flask config key that allows X-Accel-Redirect answers.
ACCEL_KEY = "MESHHUB_X_ACCEL"


def init_app(app: Flask) -> None:
    """Install the hand-over on ``app`` (call once, from ``create_app``)."""
    if ACCEL_KEY not in app.config:
        node_config = app.config.get("NODE_CONFIG")
        app.config[ACCEL_KEY] = bool(node_config is not None
                                     and node_config.portal.behind_proxy)
    app.after_request(offload_file)


def offload_file(response: Response) -> Response:
    """Replace a file body by an ``X-Accel-Redirect`` when nginx asked for it."""
    if not current_app.config.get(ACCEL_KEY):
        return response
    if request.headers.get("X-Sendfile-Type", "").lower() != "x-accel-redirect":
        return response
    if not response.direct_passthrough or response.status_code not in (200, 206):
        return response
    path = _file_path(response.response)
    internal = _map(path, request.headers.get("X-Accel-Mapping", "")) if path else None
    if internal is None:
        return response
    response.close()  # closes the open file; nginx opens its own
    response.response = []
    response.direct_passthrough = False
    response.status_code = 200  # nginx applies the Range itself
    for header in ("Content-Range", "Content-Length", "Accept-Ranges"):
        response.headers.pop(header, None)
    response.headers["Content-Length"] = "0"
    response.headers["X-Accel-Redirect"] = internal
    return response


def _file_path(body: Any) -> str | None:
    """The path of the file behind a ``send_file`` body (through Range wrappers)."""
    for _ in range(4):
        handle = getattr(body, "file", None) or getattr(body, "filelike", None)
        name = getattr(handle, "name", None)
        if isinstance(name, str):
            return name
        body = getattr(body, "iterable", None)
        if body is None:
            return None
    return None


def _map(path: str, mapping: str) -> str | None:
    """``path`` under the mapping's real directory, as the internal URI; else ``None``."""
    real, sep, uri = mapping.partition("=")
    if not sep or not real.strip() or not uri.strip().startswith("/"):
        return None
    root = os.path.realpath(real.strip())
    full = os.path.realpath(path)
    if os.path.commonpath([root, full]) != root or full == root:
        return None
    relative = os.path.relpath(full, root).replace(os.sep, "/")
    return uri.strip().rstrip("/") + "/" + quote(relative)
