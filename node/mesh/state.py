"""The node's live view of the mesh, as babeld sees it.

:class:`MeshState` is fed the events of babeld's ``monitor`` stream
(:mod:`node.mesh.babel_parse`) and answers the questions the agent asks: who are
my neighbours and how good are the links, how many routes do I have, which other
nodes' mesh addresses are reachable, and which mesh address belongs to which
neighbour. It decides nothing about routing: babeld does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, ip_network
from typing import Any

from node.frozen import frozen
from node.mesh.babel_parse import (
    Event,
    Interface,
    Neighbour,
    Route,
    XRoute,
    parse_line,
    to_interface,
    to_neighbour,
    to_route,
    to_xroute,
)

Json = dict[str, Any]


@frozen
class MeshSnapshot:
    """A consistent copy of the state at one moment."""

    interfaces: tuple[Interface, ...]
    neighbours: tuple[Neighbour, ...]
    routes: tuple[Route, ...]
    xroutes: tuple[XRoute, ...]
    connected: bool
    updated: float | None


class MeshState:
    """Neighbours, routes and interfaces kept up to date from babeld's events; thread-safe."""

    def __init__(self, mesh_range: str | IPv4Network = "10.42.0.0/16",
                 clock: Callable[[], float] = time.time) -> None:
        self.mesh_range = IPv4Network(mesh_range)
        self._clock = clock
        self._lock = threading.Lock()
        self._interfaces: dict[str, Interface] = {}
        self._neighbours: dict[str, Neighbour] = {}
        self._routes: dict[str, Route] = {}
        self._xroutes: dict[str, XRoute] = {}
        #: The routes neighbours originate (``refmetric 0``), by key: what
        #: :meth:`neighbour_addresses` reads, a handful among hundreds of routes.
        self._originated: dict[str, Route] = {}
        #: :meth:`neighbour_addresses`' last answer, until a neighbour or one of
        #: ``_originated`` changes (None: to be worked out again).
        self._addresses: dict[str, str] | None = None
        self._connected = False
        self._updated: float | None = None

    # --- feeding -------------------------------------------------------------

    def reset(self, connected: bool) -> None:
        """Forget everything (babeld restarted or the socket was lost)."""
        with self._lock:
            self._interfaces.clear()
            self._neighbours.clear()
            self._routes.clear()
            self._xroutes.clear()
            self._originated.clear()
            self._addresses = None
            self._connected = connected
            self._updated = self._clock()

    def apply(self, event: Event) -> None:
        """Apply one ``add``/``change``/``flush`` event."""
        table: dict[str, Any]
        value: Any  # the table's own record type (Interface, Neighbour, Route or XRoute)
        with self._lock:
            if event.kind == "interface":
                table, value = self._interfaces, to_interface(event)
            elif event.kind == "neighbour":
                table, value = self._neighbours, to_neighbour(event)
            elif event.kind == "route":
                table, value = self._routes, to_route(event)
            else:
                table, value = self._xroutes, to_xroute(event)
            if event.action == "flush":
                table.pop(event.key, None)
            else:
                table[event.key] = value
            if event.kind == "neighbour":
                self._addresses = None
            elif event.kind == "route":
                self._note_route(event.key, None if event.action == "flush" else value)
            self._updated = self._clock()

    def _note_route(self, key: str, route: Route | None) -> None:
        """Keep ``_originated`` (under the lock): forget the answer of
        :meth:`neighbour_addresses` when a route a neighbour originates came, changed or
        went; the other routes (most of babeld's reports: ~800 routes at 200 nodes) leave
        it as it was."""
        was = self._originated.pop(key, None)
        if route is not None and route.refmetric == 0:
            self._originated[key] = route
        elif was is None:
            return
        self._addresses = None

    def feed(self, lines: Iterable[str]) -> int:
        """Apply every event among ``lines`` (a ``dump`` or a piece of ``monitor``)."""
        count = 0
        for line in lines:
            event = parse_line(line)
            if event is not None:
                self.apply(event)
                count += 1
        return count

    # --- reading -------------------------------------------------------------

    def snapshot(self) -> MeshSnapshot:
        """A consistent copy of everything known now."""
        with self._lock:
            return MeshSnapshot(tuple(self._interfaces.values()),
                                tuple(sorted(self._neighbours.values(),
                                             key=lambda n: (n.interface, n.address))),
                                tuple(sorted(self._routes.values(), key=lambda r: r.prefix)),
                                tuple(self._xroutes.values()), self._connected, self._updated)

    def _in_range(self, prefix: str) -> IPv4Address | None:
        return _node_address(prefix, self.mesh_range)

    def node_addresses(self, installed: bool = False) -> list[str]:
        """Mesh addresses of every other node reachable now (membership beyond one link);
        with ``installed``, only those whose route is in the kernel's table."""
        with self._lock:
            prefixes = {r.prefix for r in self._routes.values()
                        if r.reachable and (r.installed or not installed)}
        found = {self._in_range(prefix) for prefix in prefixes}
        return sorted(str(a) for a in found if a is not None)

    def neighbour_addresses(self) -> dict[str, str]:
        """``{link-local address: mesh address}`` for each live neighbour that announces one.

        A neighbour's own mesh address is the /32 it originates: a route learned
        through it (``via`` its link-local address) with ``refmetric 0``.
        """
        # Asked at every change babeld reports and at every post a node passes on (its
        # neighbours are listed), so only the few routes a neighbour originates are
        # looked at, and only after one of them or a neighbour changed: with 200 nodes,
        # a copy of all ~800 routes, sorted, and each prefix parsed took 15 ms here,
        # several hundred times while the mesh formed; going through them all at each
        # post was 1.4 % of a relaying agent's processor time in a 5 x 5 grid, and the
        # routes grow with the mesh (docs/scale.md, session 12).
        with self._lock:
            if self._addresses is not None:
                return dict(self._addresses)
            alive = {n.address for n in self._neighbours.values() if n.alive}
            own = sorted((r for r in self._originated.values()
                          if r.via in alive and r.reachable), key=lambda r: r.prefix)
            found: dict[str, str] = {}
            for route in own:
                address = self._in_range(route.prefix)
                if address is not None:
                    found[route.via] = str(address)
            self._addresses = found
            return dict(found)

    def health(self) -> Json | None:
        """The ``mesh`` part of the health document, or ``None`` before babeld was read."""
        snap = self.snapshot()
        if not snap.connected:
            return None
        names = self.neighbour_addresses()
        return {
            "neighbours": [{"address": n.address, "interface": n.interface,
                            "node": names.get(n.address), "cost": n.cost, "rxcost": n.rxcost,
                            "txcost": n.txcost, "reach_ratio": round(n.reach_ratio, 4)}
                           for n in snap.neighbours],
            "routes": sum(1 for r in snap.routes if r.installed and r.reachable),
            "nodes": self.node_addresses(),
            "announced": sorted(x.prefix for x in snap.xroutes),
            "updated": None if snap.updated is None else round(snap.updated, 3),
        }


@lru_cache(maxsize=4096)
def _node_address(prefix: str, mesh_range: IPv4Network) -> IPv4Address | None:
    """The node address a route's ``prefix`` names (a /32 inside ``mesh_range``), or None.
    Cached: the same few hundred prefixes come back in every update babeld reports."""
    try:
        network = ip_network(prefix, strict=False)
    except ValueError:
        return None
    if network.version == 4 and network.prefixlen == 32 and network.subnet_of(mesh_range):
        return IPv4Address(network.network_address)
    return None
