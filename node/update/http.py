"""The agent's release mirror and update status: a plain WSGI app under ``/update/v1``.

Every node that holds a verified release serves it to its neighbours, so a
release crosses each mesh link once (docs/updates.md)::

    GET  /update/v1/manifest          the newest release this node holds (manifest.json)
    GET  /update/v1/files/<sha256>    a file of that release, by hash (Range supported)
    GET  /update/v1/status            version, update state, last check and result
    POST /update/v1/notify            a neighbour holds a new release: check soon
    POST /update/v1/check             from this machine only: check now (meshhub update check)

Strict limits: only ``GET``/``HEAD`` and the two ``POST`` paths; no request
body larger than a few bytes; only files listed in a manifest this node
holds and verified; a Range header of exactly ``bytes=N-`` or ``bytes=N-M``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from node import transfer
from node.agent_auth import CALLER_KEY

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
PREFIX = "/update/v1"
_FILE = re.compile(r"/files/([0-9a-f]{64})")
MAX_PATH = 200
MAX_BODY = 16


class MirrorSource(Protocol):
    """What the app serves; implemented by :class:`node.update.service.UpdateService`."""

    def served_manifest(self) -> bytes | None:
        """The manifest file of the newest verified release held, or None."""

    def served_file(self, sha256: str) -> Path | None:
        """The path of a file listed in a held, verified manifest, or None."""

    def status(self) -> dict[str, Any]:
        """The update status document."""
        ...

    def request_check(self, reason: str) -> None:
        """Run a check soon."""

    def notified(self, address: str, port: int | None) -> bool:
        """A node at ``address`` says it holds a new release; True if it is a neighbour."""
        ...


class _HTTPError(Exception):
    def __init__(self, status: str, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def _json(start_response: StartResponse, value: Any, status: str = "200 OK") -> list[bytes]:
    body = (json.dumps(value, sort_keys=True) + "\n").encode("utf-8")
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
    return [body]


def _small_body(environ: dict[str, Any]) -> bytes:
    raw = environ.get("CONTENT_LENGTH") or "0"
    if not raw.isdigit() or int(raw) > MAX_BODY:
        raise _HTTPError("413 Content Too Large", f"request body over {MAX_BODY} bytes")
    return bytes(environ["wsgi.input"].read(int(raw))) if int(raw) else b""


def _from_this_machine(environ: dict[str, Any]) -> bool:
    """True for a request of this machine's own processes: one that the agent's guard
    (:func:`node.agent_auth.guard`) let through unsigned because it came from one of
    this machine's addresses, or, without the guard, one from loopback.

    A node's agent listens on its mesh address (customise), so ``meshhub update
    check`` on the node comes from that address, not from loopback (found on a
    booted node: every check was refused with 403).
    """
    if CALLER_KEY in environ:
        return environ[CALLER_KEY] is None
    try:
        return ipaddress.ip_address(environ.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def create_update_app(source: MirrorSource) -> WSGIApp:
    """The WSGI application serving ``source``'s releases and status."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if len(path) > MAX_PATH or not path.startswith(PREFIX + "/"):
                raise _HTTPError("404 Not Found", "not an update path")
            sub = path[len(PREFIX):]
            if method in ("GET", "HEAD"):
                return _get(source, sub, environ, start_response)
            if method == "POST" and sub in ("/notify", "/check"):
                return _post(source, sub, environ, start_response)
            raise _HTTPError("405 Method Not Allowed", f"{method} is not allowed on {sub}")
        except _HTTPError as exc:
            return _json(start_response, {"error": exc.message}, exc.status)

    return app


def _get(source: MirrorSource, sub: str, environ: dict[str, Any],
         start_response: StartResponse) -> Iterable[bytes]:
    if sub == "/manifest":
        data = source.served_manifest()
        if data is None:
            raise _HTTPError("404 Not Found", "this node holds no release")
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(data))),
                                  ("Cache-Control", "no-store")])
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [data]
    if sub == "/status":
        return _json(start_response, source.status())
    match = _FILE.fullmatch(sub)
    if match is None:
        raise _HTTPError("404 Not Found", f"{sub[:80]} is not part of the update protocol")
    found = source.served_file(match.group(1))
    if found is None:
        raise _HTTPError("404 Not Found", f"no release file {match.group(1)} here")
    return _serve_file(found, environ, start_response)


def _post(source: MirrorSource, sub: str, environ: dict[str, Any],
          start_response: StartResponse) -> Iterable[bytes]:
    body = _small_body(environ)
    if sub == "/check":
        if not _from_this_machine(environ):
            raise _HTTPError("403 Forbidden", "checks are started from the node itself "
                                              "(meshhub update check)")
        source.request_check("asked by meshhub update check")
        return _json(start_response, {"scheduled": True}, "202 Accepted")
    text = body.decode("ascii", "replace").strip()
    port = int(text) if text.isdigit() and 0 < int(text) < 65536 else None
    accepted = source.notified(environ.get("REMOTE_ADDR", ""), port)
    return _json(start_response, {"scheduled": accepted}, "202 Accepted" if accepted else "200 OK")


def _serve_file(path: Path, environ: dict[str, Any],
                start_response: StartResponse) -> Iterable[bytes]:
    """A release file, whole or from a byte range (to resume a transfer)."""
    try:
        size = path.stat().st_size
    except OSError:
        raise _HTTPError("404 Not Found", "release file gone") from None
    return transfer.serve_file(path, size, environ, start_response)
