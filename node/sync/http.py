"""The sync protocol's server side: a plain WSGI application under ``/sync/v1``.

The agent serves it beside the health API (:mod:`node.agent_app`). Every
request body is size-limited (``sync.max_request_bytes``, refused with 413
before it is read) and parsed strictly (400 naming the member); responses
are bounded (a page of entries fits in :data:`~node.sync.protocol.MAX_PAGE_BYTES`).
The endpoints are specified in docs/replication.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from node import transfer
from node.agent_auth import CALLER_KEY
from node.sync import protocol
from node.sync.protocol import ProtocolError

if TYPE_CHECKING:
    from node.sync.service import SyncService

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_BLOB = re.compile(r"/blobs/([0-9a-f]{64})")


class _HTTPError(Exception):
    def __init__(self, status: str, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def _send(start_response: StartResponse, status: str, body: bytes,
          content_type: str = protocol.JSON_TYPE) -> list[bytes]:
    start_response(status, [("Content-Type", content_type),
                            ("Content-Length", str(len(body)))])
    return [body]


def _json(start_response: StartResponse, value: Any, status: str = "200 OK") -> list[bytes]:
    return _send(start_response, status, protocol.dumps(value))


def _body(environ: dict[str, Any], limit: int) -> Any:
    raw_length = environ.get("CONTENT_LENGTH") or ""
    if not raw_length.isdigit():
        raise _HTTPError("411 Length Required", "a Content-Length is required")
    length = int(raw_length)
    if length > limit:
        raise _HTTPError("413 Content Too Large",
                         f"request body of {length} bytes; this node accepts at most {limit}")
    data = environ["wsgi.input"].read(length)
    if len(data) != length:
        raise _HTTPError("400 Bad Request", "request body shorter than its Content-Length")
    return protocol.loads(data, "request")


def _requester(environ: dict[str, Any], port: int | None) -> str | None:
    """The base URL of the requesting node's agent, from its address and the port it gave."""
    host = environ.get("REMOTE_ADDR") or ""
    if port is None or not host:
        return None
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def create_sync_app(service: SyncService) -> WSGIApp:
    """The WSGI application serving ``service``'s store, files and registry to peers."""
    settings = service.settings
    store = service.store

    def digest(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return _json(start_response, service.digest_doc().to_json())

    def vector(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        theirs, port = protocol.parse_vector_request(_body(environ, settings.max_request_bytes))
        mine = store.vector()
        trust = store.trust
        if any(seq > mine.get(a, 0) and trust.is_trusted(a) for a, seq in theirs.items()):
            peer = _requester(environ, port)
            if peer is not None:
                service.notified(environ.get(CALLER_KEY) or environ.get("REMOTE_ADDR") or "?",
                                 peer)
        return _json(start_response, {"vector": mine})

    def entries(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        since, limit = protocol.parse_entries_request(_body(environ, settings.max_request_bytes),
                                                      settings.max_page_entries)
        found = store.entries_since(since, limit + 1)
        more = len(found) > limit
        page: list[bytes] = []
        size = len(b'{"entries":[],"more":false}')
        for wire in found[:limit]:
            encoded = protocol.dumps(wire)
            if page and size + len(encoded) + 1 > protocol.MAX_PAGE_BYTES:
                more = True
                break
            page.append(encoded)
            size += len(encoded) + 1
        body = (b'{"entries":[' + b",".join(page) + b'],"more":'
                + (b"true" if more else b"false") + b"}")
        return _send(start_response, "200 OK", body)

    def bodies(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        ids = protocol.parse_bodies_request(_body(environ, settings.max_request_bytes))
        page: list[bytes] = []
        size = len(b'{"entries":[]}')
        for wire in store.entries_with_bodies(ids):
            encoded = protocol.dumps(wire)
            if size + len(encoded) + 1 > protocol.MAX_PAGE_BYTES:
                break  # the asker asks again for the rest
            page.append(encoded)
            size += len(encoded) + 1
        return _send(start_response, "200 OK", b'{"entries":[' + b",".join(page) + b"]}")

    def _too_many() -> _HTTPError:
        return _HTTPError("429 Too Many Requests",
                          "too many notifications; the periodic round will pull from you")

    def notify(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        their_digest, port = protocol.parse_notify(_body(environ, protocol.MAX_SMALL_BYTES))
        if (their_digest == store.digest() and not service.lacks_bodies()
                and not service.lacks_files()):
            return _json(start_response, {"pull": False})
        peer = _requester(environ, port)
        sender = environ.get(CALLER_KEY) or environ.get("REMOTE_ADDR") or "?"
        # peer None: an unknown notifier, pull from every neighbour
        if not service.notified(sender, peer, their_digest):
            raise _too_many()
        return _json(start_response, {"pull": True}, "202 Accepted")

    def push(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        pushed = protocol.parse_push(_body(environ, protocol.MAX_PUSH_BYTES))
        sender = environ.get(CALLER_KEY) or environ.get("REMOTE_ADDR") or "?"
        # A refused entry raises PushRefused, a ProtocolError: 400 naming the entry.
        pull = service.received_push(sender, _requester(environ, pushed.port), pushed)
        if pull is None:
            raise _too_many()
        return _json(start_response, {"pull": pull}, "202 Accepted" if pull else "200 OK")

    def registry(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        snap = service.registry.snapshot if service.registry is not None else None
        if snap is None:
            raise _HTTPError("404 Not Found", "this node has no registry snapshot")
        return _send(start_response, "200 OK", snap.dumps())

    def status(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return _json(start_response, service.status())

    routes: dict[tuple[str, str], Callable[..., Iterable[bytes]]] = {
        ("GET", "/digest"): digest, ("POST", "/vector"): vector,
        ("POST", "/entries"): entries, ("POST", "/bodies"): bodies,
        ("POST", "/notify"): notify, ("POST", "/push"): push,
        ("GET", "/registry"): registry, ("GET", "/status"): status,
    }

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            return answer(environ, start_response)
        finally:
            # The answer is made (a file is streamed from its own descriptor): close this
            # thread's store connection. The server's four worker threads would otherwise
            # each keep one for good, ~145 KiB each of an idle agent's memory; opening one
            # again costs 0.4-3 ms on this machine, once per request.
            service.store.release()

    def answer(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if not path.startswith(protocol.PREFIX):
            return _json(start_response, {"error": "not a sync path"}, "404 Not Found")
        sub = path[len(protocol.PREFIX):]
        try:
            blob = _BLOB.fullmatch(sub)
            if blob is not None:
                if method not in ("GET", "HEAD"):
                    raise _HTTPError("405 Method Not Allowed", "files are fetched with GET")
                return _serve_file(service, blob.group(1), environ, start_response)
            handler = routes.get((method, sub))
            if handler is None:
                known = any(p == sub for _, p in routes)
                raise _HTTPError("405 Method Not Allowed" if known else "404 Not Found",
                                 f"{method} {path[:100]} is not part of the sync protocol")
            return handler(environ, start_response)
        except ProtocolError as exc:
            return _json(start_response, {"error": str(exc)}, "400 Bad Request")
        except _HTTPError as exc:
            return _json(start_response, {"error": exc.message}, exc.status)

    return app


def _serve_file(service: SyncService, sha256: str, environ: dict[str, Any],
                start_response: StartResponse) -> Iterable[bytes]:
    """A library file by hash, whole or from a byte range (to resume a transfer)."""
    if not service.store.library_items_by_sha(sha256) or not service.blobs.has(sha256):
        raise _HTTPError("404 Not Found", f"no library file {sha256}")
    path = service.blobs.path(sha256)
    return transfer.serve_file(path, path.stat().st_size, environ, start_response)
