"""Health documents turned into what the technicians' pages show: rows, neighbours, links.

Pure functions on :class:`~portal.technicians.gather.NodeStatus` values. A
document from another node was checked for shape when it arrived, but any
single value may still be missing or odd: everything here reads defensively
and says "unknown" (``None``) rather than guessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from portal.technicians.gather import NodeStatus
from portal.technicians.svg import MapLink, MapNode, quality_of

Json = dict[str, Any]
#: A document older than this (its agent's sampler is stuck) is marked stale.
STALE_SECONDS = 300


def _num(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and value == value else None


def _section(doc: Json | None, name: str) -> Json:
    value = (doc or {}).get(name)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Row:
    """One line of the nodes' table."""

    status: NodeStatus
    neighbours: int | None
    clients: float | None
    temperature: float | None
    voltage: float | None
    undervoltage: bool
    disk_ratio: float | None
    version: str | None
    alerts: list[Json] = field(default_factory=list)
    update: Json = field(default_factory=dict)  #: the document's ``update`` part, if any
    sample_time: float | None = None
    stale: bool = False


def power_voltage(doc: Json | None) -> float | None:
    """The bus voltage of the first answering power monitor, if any."""
    for sensor in (doc or {}).get("sensors") or []:
        if isinstance(sensor, dict) and sensor.get("category") == "power" \
                and sensor.get("available"):
            return _num((sensor.get("values") or {}).get("bus_voltage_volts"))
    return None


def alerts_of(doc: Json | None) -> list[Json]:
    """The document's active alerts that have the fields a page shows."""
    found = []
    for alert in (doc or {}).get("alerts") or []:
        if isinstance(alert, dict) and isinstance(alert.get("kind"), str):
            found.append({k: alert.get(k) for k in ("kind", "subject", "detail", "title",
                                                    "check", "started")})
    return found


def neighbours_of(doc: Json | None) -> list[Json] | None:
    """The ``mesh.neighbours`` list, or ``None`` when the node has no mesh data."""
    mesh = (doc or {}).get("mesh")
    if not isinstance(mesh, dict):
        return None
    return [n for n in mesh.get("neighbours") or [] if isinstance(n, dict)]


def row(status: NodeStatus, now: float) -> Row:
    """The table's line for ``status`` (values from its last document, even when down)."""
    doc = status.doc
    neighbours = neighbours_of(doc)
    flags = _section(_section(doc, "soc"), "throttling")
    sample_time = _num((doc or {}).get("time"))
    return Row(status=status,
               neighbours=None if neighbours is None else len(neighbours),
               clients=_num(_section(doc, "clients").get("dhcp_leases")),
               temperature=_num(_section(doc, "soc").get("temperature_celsius")),
               voltage=power_voltage(doc),
               undervoltage=bool(flags.get("under_voltage")),
               disk_ratio=_num(_section(doc, "disk").get("used_ratio")),
               version=_section(doc, "node").get("version") if doc else None,
               update=_section(doc, "update"),
               alerts=alerts_of(doc) if status.up else [],
               sample_time=sample_time,
               stale=status.up and sample_time is not None and now - sample_time > STALE_SECONDS)


def coordinates(status: NodeStatus) -> tuple[float, float] | None:
    """(latitude, longitude) from the document's ``node.coordinates``, if valid."""
    value = _section(status.doc, "node").get("coordinates")
    if isinstance(value, list) and len(value) == 2:
        lat, lon = _num(value[0]), _num(value[1])
        if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
            return lat, lon
    return None


@dataclass(frozen=True)
class Neighbour:
    """One neighbour of a node, as its babeld sees it, matched to a known node if possible."""

    address: str
    interface: str
    mesh_address: str | None
    cost: float | None
    rxcost: float | None
    txcost: float | None
    reach_ratio: float | None
    quality: str
    node: NodeStatus | None


def neighbours(status: NodeStatus, known: Sequence[NodeStatus],
               poor_from: float) -> list[Neighbour] | None:
    """``status``'s neighbours with link costs, or ``None`` without mesh data."""
    listed = neighbours_of(status.doc)
    if listed is None:
        return None
    by_address = {a: s for s in known for a in s.addresses}
    result = []
    for n in listed:
        mesh_address = n.get("node") if isinstance(n.get("node"), str) else None
        cost = _num(n.get("cost"))
        result.append(Neighbour(
            address=str(n.get("address", "")), interface=str(n.get("interface", "")),
            mesh_address=mesh_address, cost=cost, rxcost=_num(n.get("rxcost")),
            txcost=_num(n.get("txcost")), reach_ratio=_num(n.get("reach_ratio")),
            quality=quality_of(cost, poor_from),
            node=by_address.get(mesh_address) if mesh_address else None))
    return result


def mesh_graph(statuses: Sequence[NodeStatus], poor_from: float,
               href: Any = None) -> tuple[list[MapNode], list[MapLink]]:
    """Nodes and links for the map; a neighbour no known node claims appears as its address.

    A link heard from both ends keeps the worse (higher) cost of the two.
    ``href(status)`` gives each known node's link on the map.
    """
    nodes = [MapNode(key=s.target, label=s.name, up=s.up, coordinates=coordinates(s),
                     href=href(s) if href else None) for s in statuses]
    keys = {n.key for n in nodes}
    costs: dict[frozenset[str], float | None] = {}
    for status in statuses:
        for n in neighbours(status, statuses, poor_from) or []:
            if n.node is not None:
                other = n.node.target
            elif n.mesh_address:
                other = n.mesh_address
                if other not in keys:
                    nodes.append(MapNode(key=other, label=other, up=None))
                    keys.add(other)
            else:
                continue
            if other == status.target:
                continue
            pair = frozenset((status.target, other))
            old = costs.get(pair)
            costs[pair] = n.cost if old is None else (old if n.cost is None
                                                      else max(old, n.cost))
    links = []
    for pair, cost in sorted(costs.items(), key=lambda item: sorted(item[0])):
        a, b = sorted(pair)
        links.append(MapLink(a, b, cost, quality_of(cost, poor_from)))
    return nodes, links
