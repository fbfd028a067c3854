"""Helpers for the sync tests: nodes with a store, a library, a sync service and a server."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.agent_app import compose
from node.agent_auth import RequestAuth, guard
from node.blobs import BlobStore
from node.identity import Identity
from node.store import Store
from node.sync.http import create_sync_app
from node.sync.service import SyncService, SyncSettings
from node.trust import StaticTrust
from node.waitress_thread import WaitressThread

#: Short timings so that the tests take seconds, not minutes.
FAST = SyncSettings(interval_seconds=3600, jitter_ratio=0.0, coalesce_seconds=0.0,
                    watch_seconds=0.02, timeout_seconds=3.0, backoff_base_seconds=0.05,
                    backoff_max_seconds=0.3)
WSGIApp = Callable[..., Iterable[bytes]]


class Server:
    """A waitress server for ``app`` on a free loopback port, in a thread."""

    def __init__(self, app: WSGIApp) -> None:
        from waitress.server import create_server

        self._server = create_server(app, host="127.0.0.1", port=0, threads=4,
                                     max_request_body_size=1 << 20, ident="test")
        self.port = int(self._server.effective_port)
        self.url = f"http://127.0.0.1:{self.port}"
        self._served = WaitressThread(self._server, f"test-server-{self.port}")
        self._served.start()

    def stop(self) -> None:
        """Close every connection and the listener, and wait for the thread."""
        self._served.stop()


@dataclass
class Node:
    """One node: its store, library, sync service and HTTP server."""

    name: str
    identity: Identity
    store: Store
    blobs: BlobStore
    service: SyncService
    server: Server | None = None
    peer_list: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The node's agent base URL."""
        assert self.server is not None
        return self.server.url

    def close(self) -> None:
        """Stop the service and the server, close the store."""
        self.service.stop()
        if self.server is not None:
            self.server.stop()
        self.store.close()


def make_node(tmp_path: Path, name: str, identity: Identity, trusted: Iterable[Identity],
              settings: SyncSettings = FAST, *, serve: bool = True,
              wrap: Callable[[WSGIApp], WSGIApp] | None = None,
              is_local: Callable[[str], bool] | None = None,
              clock: Callable[[], float] = time.monotonic) -> Node:
    """A node under ``tmp_path/name`` trusting ``trusted``; served if ``serve``, by a server
    that, as an agent's, checks signed requests and signs its answers (``is_local``: which
    callers need no signature, by default this machine's own addresses; ``clock``: its
    back-off's and notification limit's)."""
    root = tmp_path / name
    trust = StaticTrust([identity.public_key, *(t.public_key for t in trusted)])
    store = Store.open(root / "hub.sqlite3", identity, trust)
    blobs = BlobStore(root / "library")
    node = Node(name, identity, store, blobs, SyncService(store, blobs, settings, clock=clock))
    node.service.add_peer_source(lambda: list(node.peer_list))
    if serve:
        app = compose(_not_found, {"/sync/": create_sync_app(node.service)})
        # As an agent does: requests checked (this machine's unsigned ones let through),
        # answers signed; outside what ``wrap`` does (a tampering peer signs its lies).
        checked = RequestAuth(trust.is_trusted, identity, is_local=is_local)
        node.server = Server(guard(wrap(app) if wrap else app, checked, 1 << 20))
        node.service.own_port = lambda: node.server.port if node.server else None
    return node


def _not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("404 Not Found", [("Content-Length", "0")])
    return [b""]


@contextmanager
def nodes(tmp_path: Path, names: Iterable[str], settings: SyncSettings = FAST,
          **kwargs: Any) -> Iterator[dict[str, Node]]:
    """Nodes that all trust each other (not yet linked, not yet started)."""
    names = list(names)
    idents = {n: Identity.generate() for n in names}
    made: dict[str, Node] = {}
    try:
        for n in names:
            made[n] = make_node(tmp_path, n, idents[n], idents.values(), settings, **kwargs)
        yield made
    finally:
        for node in made.values():
            node.close()


def link(a: Node, b: Node) -> None:
    """Make ``a`` and ``b`` neighbours (static peers both ways)."""
    a.peer_list.append(b.url)
    b.peer_list.append(a.url)


def cut(a: Node, b: Node) -> None:
    """Stop ``a`` and ``b`` from syncing with each other, as a broken link would.

    Taking each other off the peer lists stops new rounds; a round already under
    way, or a pull one of them asked the other for meanwhile (a notify, a vector
    showing more), could still cross the cut. So wait for each node's round to
    end and drop pulls scheduled from the other, twice: the first pass lets the
    rounds in flight finish, the second drops what they scheduled.
    """
    a.peer_list.remove(b.url)
    b.peer_list.remove(a.url)
    for _ in range(2):
        for node, other in ((a, b), (b, a)):
            service = node.service
            with service._round_lock, service._lock:
                service._pending.discard(other.url)


def idle(*members: Node) -> bool:
    """True when no round runs on any of ``members`` and none has a pull scheduled or a
    push held back (for a neighbour expected to push the same entries).

    Checked holding every member's round: a round tells the neighbours of its change
    (their pulls get scheduled) before it ends, so nothing is left in flight.
    """
    with ExitStack() as held:
        for node in members:
            held.enter_context(node.service._round_lock)
        return not any(node.service._pending or node.service._announce_due
                       or node.service._deferred for node in members)


def portals_render(*members: Node) -> bool:
    """Render what replication stored with a stand-in on each of ``members``, as each
    node's portal does (portal/rendering.py; the agent renders nothing); True, so that
    it can stand in a condition of ``wait_for``."""
    for node in members:
        while node.store.render_pending():
            pass
    return True


def notice(title: str = "Water off", body: str = "Tuesday 9-12") -> dict[str, Any]:
    """A valid notice.post body."""
    return {"title": title, "body": body}


def fake_pdf(size: int, seed: int = 0) -> bytes:
    """Bytes of ``size`` that start like a PDF (content differs per seed)."""
    head = b"%PDF-1.4\n% seed " + str(seed).encode() + b"\n"
    filler = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    return (head + filler)[:size]


def add_file(node: Node, data: bytes, title: str = "Guide") -> dict[str, Any]:
    """Store ``data`` in ``node``'s library and append its library.add entry."""
    sha, size = node.blobs.put(io.BytesIO(data))
    return node.store.append("library.add", {
        "title": title, "media_type": "pdf", "mime": "application/pdf", "sha256": sha,
        "size": size, "filename": "guide.pdf"}, actor="ada")
