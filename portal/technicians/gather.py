"""Every known node's health document, gathered in the background for the technicians' pages.

Which nodes: this node's own agent (``agent.listen``:``agent.port``), the
agents in ``agent.peers``, and every node the mesh knows of — the own
document's ``mesh.nodes`` (babeld's routes) and ``mesh.peers`` (neighbours'
agents found by zeroconf), see :mod:`node.mesh`. Nodes once seen stay listed,
so a node that went silent shows as "unreachable since …" instead of vanishing.

How: a page asks :meth:`Gatherer.statuses`; when the last round is older than
``refresh_seconds`` a new round starts in one short-lived thread that asks
every agent at once (at most ``workers`` at a time, ``timeout`` each, documents
capped at 1 MiB and checked by :func:`node.health.document.check_document`).
The page waits at most ``wait_seconds`` for it and otherwise shows what the
previous round found: a slow or dead peer never holds a page up for long, and
no thread runs while nobody looks at these pages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from node.health.document import (
    DocumentError,
    fetch_document,
    fetch_json,
    normalise_target,
)
from node.logs import OnceLogger

log = logging.getLogger("meshhub.portal.technicians")
Json = dict[str, Any]

#: At most this many nodes are followed (a neighbourhood mesh has tens).
MAX_NODES = 200
#: Largest graph data accepted from an agent.
MAX_SERIES_BYTES = 1024 * 1024
#: The quantities graphed, in the order ``/api/health/series`` sends them.
SERIES = ("cpu_ratio", "memory_ratio", "temperature_celsius", "voltage_volts", "disk_ratio",
          "clients")


@dataclass(frozen=True)
class NodeStatus:
    """What the portal knows about one node's agent."""

    target: str  #: ``host:port`` of its agent
    own: bool = False  #: this node's own agent
    doc: Json | None = None  #: the last document received (kept while it is unreachable)
    last_seen: float | None = None  #: when a document was last received (portal's clock)
    error: str | None = None  #: why the last attempt failed; None when it succeeded
    down_since: float | None = None  #: first failure since the last success
    asked: bool = False  #: False until the first attempt finished

    @property
    def up(self) -> bool:
        """The agent answered the latest attempt with an acceptable document."""
        return self.asked and self.error is None and self.doc is not None

    @property
    def name(self) -> str:
        """The node's name from its document, else its address."""
        node = (self.doc or {}).get("node") or {}
        name = node.get("name")
        return name if isinstance(name, str) and name else self.target

    @property
    def host(self) -> str:
        """The address part of :attr:`target` (without brackets)."""
        return self.target.rsplit(":", 1)[0].strip("[]")

    @property
    def addresses(self) -> set[str]:
        """Every address the node is known by: its agent's host and its interfaces' IPv4s."""
        found = {self.host}
        network = (self.doc or {}).get("network")
        interfaces = network.get("interfaces") if isinstance(network, dict) else None
        for info in (interfaces or {}).values() if isinstance(interfaces, dict) else ():
            if isinstance(info, dict):
                found.update(a for a in info.get("ipv4") or [] if isinstance(a, str))
        return found


def own_target(listen: str, port: int) -> str:
    """This node's agent as the portal reaches it (a wildcard address means loopback)."""
    host = "127.0.0.1" if listen in ("0.0.0.0", "") else listen  # noqa: S104 (a comparison)
    return f"{host}:{port}"


def discovered_targets(doc: Json | None, agent_port: int) -> list[str]:
    """Agents named by a node's ``mesh`` part: routed nodes and zeroconf-found neighbours."""
    mesh = (doc or {}).get("mesh")
    if not isinstance(mesh, dict):
        return []
    found: list[str] = []
    for peer in mesh.get("peers") or []:
        if isinstance(peer, str) and peer.startswith("http://"):
            found.append(peer[len("http://"):].rstrip("/"))
    for address in mesh.get("nodes") or []:
        if isinstance(address, str):
            found.append(f"{address}:{agent_port}")
    clean = []
    for text in found:
        try:
            clean.append(normalise_target(text, agent_port))
        except ValueError:
            continue
    return clean


class Gatherer:
    """Keeps every known node's latest :class:`NodeStatus`; thread-safe."""

    def __init__(self, own: str, peers: Iterable[str] = (), *, agent_port: int = 9180,
                 fetch: Callable[[str, float], Json] | None = None,
                 refresh_seconds: float = 15.0, timeout: float = 2.0, workers: int = 4,
                 wait_seconds: float = 1.5, clock: Callable[[], float] = time.time) -> None:
        self.own = own
        self.agent_port = agent_port
        self.refresh_seconds = refresh_seconds
        self.timeout = timeout
        self.workers = workers
        self.wait_seconds = wait_seconds
        self._fetch = fetch or (lambda target, timeout: fetch_document(target, timeout))
        self._clock = clock
        self._lock = threading.Lock()
        self._problems = OnceLogger(log)
        self._nodes: dict[str, NodeStatus] = {own: NodeStatus(own, own=True)}
        for peer in peers:
            self._add(normalise_target(peer, agent_port))
        self._round_started: float | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def _add(self, target: str) -> None:
        if target not in self._nodes and len(self._nodes) < MAX_NODES:
            self._nodes[target] = NodeStatus(target)

    # --- reading -----------------------------------------------------------------

    def statuses(self, wait: float | None = None) -> list[NodeStatus]:
        """Every known node: this one first, then by name; refreshed if stale.

        Waits for a running round at most ``wait`` seconds (default
        ``wait_seconds``). A node reachable under two addresses is listed once,
        and an address that does not answer but belongs to a node that does
        (its mesh address, when its agent listens on another) is not listed.
        """
        thread = self.refresh()
        if thread is not None:
            thread.join(self.wait_seconds if wait is None else wait)
        with self._lock:
            nodes = list(self._nodes.values())
        claimed = {a for s in nodes if s.up for a in s.addresses - {s.host}
                   if not a.startswith("127.")}
        seen: set[str] = set()
        unique = []
        for status in sorted(nodes, key=lambda s: (not s.own, not s.up, s.name, s.target)):
            if status.up and status.name in seen:
                continue
            if not status.up and not status.own and status.host in claimed:
                continue
            seen.add(status.name)
            unique.append(status)
        own = [s for s in unique if s.own]
        return own + sorted((s for s in unique if not s.own), key=lambda s: (s.name, s.target))

    def status(self, target: str) -> NodeStatus | None:
        """The node whose agent is ``target``, if it is known (never asks a new address)."""
        with self._lock:
            return self._nodes.get(target)

    # --- gathering -----------------------------------------------------------------

    def refresh(self, force: bool = False) -> threading.Thread | None:
        """Start a round if the last one is older than ``refresh_seconds``; the round's thread."""
        with self._lock:
            if self._closed:
                return None
            if self._thread is not None and self._thread.is_alive():
                return self._thread
            now = self._clock()
            if (not force and self._round_started is not None
                    and now - self._round_started < self.refresh_seconds):
                return None
            self._round_started = now
            self._thread = threading.Thread(target=self._round, name="meshhub-technicians",
                                            daemon=True)
            self._thread.start()
            return self._thread

    def _round(self) -> None:
        self._ask(self.own)  # first: its mesh part names the other nodes
        with self._lock:
            own_doc = self._nodes[self.own].doc
            for target in discovered_targets(own_doc, self.agent_port):
                self._add(target)
            others = [t for t in self._nodes if t != self.own]
        if others:
            with ThreadPoolExecutor(max_workers=self.workers,
                                    thread_name_prefix="meshhub-technicians-ask") as pool:
                list(pool.map(self._ask, others))

    def _ask(self, target: str) -> None:
        try:
            doc = self._fetch(target, self.timeout)
            error = None
            self._problems.resolved(target)
        except DocumentError as exc:
            doc, error = None, str(exc)
            self._problems.warning(target, "technicians' pages: %s", exc)
        except Exception as exc:  # a broken peer must never break the round
            doc, error = None, f"{target}: {type(exc).__name__}: {exc}"
            self._problems.warning(target, "technicians' pages: %s", error)
        now = self._clock()
        with self._lock:
            old = self._nodes.get(target, NodeStatus(target))
            if error is None:
                new = replace(old, doc=doc, last_seen=now, error=None, down_since=None,
                              asked=True)
            else:
                new = replace(old, error=error, asked=True,
                              down_since=old.down_since if old.error else now)
            self._nodes[target] = new

    def close(self) -> None:
        """Stop starting rounds and wait for the running one (at most one timeout)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            thread.join(self.timeout * 2 + 1)


def fetch_series(target: str, since: float, step: float, timeout: float = 3.0) -> Json:
    """``GET http://TARGET/api/health/series``; checked; raise DocumentError saying why not."""
    data = fetch_json(target, f"/api/health/series?since={since:.0f}&step={step:.0f}",
                      what="graph data", timeout=timeout, max_bytes=MAX_SERIES_BYTES,
                      http_hint="an older agent without graphs?")
    columns = data.get("columns") if isinstance(data, dict) else None
    points = data.get("points") if isinstance(data, dict) else None
    if not isinstance(columns, list) or not isinstance(points, list) \
            or columns[:2] != ["time", "samples"]:
        raise DocumentError(f"{target}: graph data of an unknown shape")
    index = {name: i for i, name in enumerate(columns)}
    series: dict[str, list[tuple[float, float | None]]] = {name: [] for name in SERIES}
    for row in points:
        if not isinstance(row, list) or len(row) != len(columns) \
                or not _is_number(row[0]):
            raise DocumentError(f"{target}: graph data of an unknown shape")
        for name in SERIES:
            value = row[index[name]] if name in index else None
            series[name].append((float(row[0]),
                                 float(value) if value is not None and _is_number(value) else None))
    return {"step": float(data.get("step") or step), "series": series}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and value == value and abs(value) < 1e15
