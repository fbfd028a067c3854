"""``/metrics``: the latest health sample in the Prometheus text format.

A custom :class:`prometheus_client.registry.Collector` turns the newest
sample and the active alerts into metric families at scrape time, so a
scrape never triggers a new (slower) sample.  Names follow Prometheus
conventions: a ``meshhub_`` prefix, base units in the name (``_bytes``,
``_seconds``, ``_celsius``, ``_volts``, ``_ratio``) and ``_total`` on
counters.  Something absent from the sample (no gate, no mesh data, an
unavailable sensor's values) has no series at all: absent, not zero.

The ``meshhub_mesh_*`` families come from the sample's ``mesh`` part (babeld's
neighbours, routes and known nodes, :meth:`node.mesh.MeshService.health`); with
``mesh.routing`` off or babeld not read there is no mesh series at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

Json = dict[str, Any]
#: Returns (latest sample or None, active alerts as dicts, kinds evaluated).
Snapshot = Callable[[], "tuple[Json | None, list[Json], list[str]]"]

_QUANTITY = re.compile(r"^[a-z][a-z0-9_]{0,60}_(volts|amperes|watts|celsius|ratio|pascals|"
                       r"bytes|seconds|hertz|lux)$")
_CATEGORY = re.compile(r"^[a-z][a-z0-9]{0,30}$")

#: At most this many neighbours are exported (a node has a handful; babeld lists all it hears).
MAX_NEIGHBOUR_SERIES = 256

_NET = (("receive_bytes", "Bytes received"), ("transmit_bytes", "Bytes sent"),
        ("receive_packets", "Packets received"), ("transmit_packets", "Packets sent"),
        ("receive_errors", "Receive errors"), ("transmit_errors", "Transmit errors"))


def _gauge(name: str, doc: str, value: Any, unit: str = "") -> Iterator[Metric]:
    if value is not None:
        yield GaugeMetricFamily(name, doc, value=float(value), unit=unit)


class HealthMetrics(Collector):
    """Produces every ``meshhub_*`` metric from a health snapshot at scrape time."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families of the current snapshot (called by the registry)."""
        sample, alerts, kinds = self._snapshot()
        if sample is None:
            return
        node = sample.get("node") or {}
        yield InfoMetricFamily("meshhub_build", "meshhub version and board of this node",
                               value={"version": str(node.get("version")),
                                      "model": str(node.get("model") or "unknown")})
        yield from _gauge("meshhub_health_sample_timestamp_seconds",
                          "Unix time of the sample these values come from", sample.get("time"))
        yield from _gauge("meshhub_health_collect_duration_seconds",
                          "Time the agent took to take the sample", sample.get("collect_seconds"))
        yield from _gauge("meshhub_uptime_seconds", "Seconds since the node booted",
                          sample.get("uptime_seconds"))
        yield from self._system(sample)
        yield from self._hardware(sample)
        yield from self._network(sample)
        yield from self._clients_services(sample)
        yield from _mesh(sample.get("mesh"))
        counts = dict.fromkeys(kinds, 0)
        for alert in alerts:
            counts[alert["kind"]] = counts.get(alert["kind"], 0) + 1
        family = GaugeMetricFamily("meshhub_alert_active",
                                   "Active alerts of each kind (0 when none; a kind is absent "
                                   "when this node cannot evaluate it)", labels=["kind"])
        for kind, count in sorted(counts.items()):
            family.add_metric([kind], count)
        yield family

    def _system(self, sample: Json) -> Iterator[Metric]:
        cpu = sample.get("cpu") or {}
        yield from _gauge("meshhub_cpu_usage_ratio",
                          "Share of all CPU time in use since the previous sample (0-1)",
                          cpu.get("usage_ratio"))
        for span in ("load1", "load5", "load15"):
            yield from _gauge(f"meshhub_{span}", f"Load average over {span[4:]} minute(s)",
                              cpu.get(span))
        mem = sample.get("memory") or {}
        for key, doc in (("total_bytes", "Memory installed"),
                         ("used_bytes", "Memory in use (total minus available)"),
                         ("available_bytes", "Memory available to programs")):
            yield from _gauge(f"meshhub_memory_{key}", doc, mem.get(key))
        disk = sample.get("disk") or {}
        for key, doc in (("size_bytes", "Size of the data partition"),
                         ("used_bytes", "Bytes used on the data partition"),
                         ("free_bytes", "Bytes free on the data partition"),
                         ("used_ratio", "Share of the data partition in use (0-1)")):
            if disk.get(key) is not None:
                family = GaugeMetricFamily(f"meshhub_disk_{key}", doc, labels=["path"])
                family.add_metric([str(disk.get("path"))], float(disk[key]))
                yield family
        wear = disk.get("wear") or {}
        life = GaugeMetricFamily("meshhub_storage_life_used_ratio",
                                 "Storage wear estimate reported by the eMMC/SD (0-1, upper "
                                 "bound of the reported range)", labels=["device", "type"])
        for kind in ("a", "b"):
            if wear.get(f"life_used_{kind}_ratio") is not None:
                life.add_metric([wear["device"], kind.upper()], wear[f"life_used_{kind}_ratio"])
        if life.samples:
            yield life

    def _hardware(self, sample: Json) -> Iterator[Metric]:
        soc = sample.get("soc") or {}
        yield from _gauge("meshhub_soc_temperature_celsius", "Temperature of the processor",
                          soc.get("temperature_celsius"))
        flags = soc.get("throttling")
        if flags is not None:
            family = GaugeMetricFamily("meshhub_throttling_flag",
                                       "Raspberry Pi firmware throttling flags (1 = set)",
                                       labels=["flag"])
            for flag, value in sorted(flags.items()):
                family.add_metric([flag], 1.0 if value else 0.0)
            yield family
        up = GaugeMetricFamily("meshhub_sensor_up", "1 when the sensor gave a reading",
                               labels=["sensor", "chip"])
        values: dict[str, GaugeMetricFamily] = {}
        for sensor in sample.get("sensors") or []:
            name, chip = str(sensor.get("name")), str(sensor.get("chip"))
            up.add_metric([name, chip], 1.0 if sensor.get("available") else 0.0)
            category = str(sensor.get("category"))
            if not _CATEGORY.match(category):
                continue
            for quantity, value in (sensor.get("values") or {}).items():
                if value is None or not _QUANTITY.match(quantity):
                    continue
                metric = f"meshhub_{category}_{quantity}"
                if metric not in values:
                    values[metric] = GaugeMetricFamily(
                        metric, f"{quantity.replace('_', ' ')} measured by a {category} sensor",
                        labels=["sensor"])
                values[metric].add_metric([name], float(value))
        if up.samples:
            yield up
        yield from (values[name] for name in sorted(values))

    def _network(self, sample: Json) -> Iterator[Metric]:
        network = sample.get("network") or {}
        interfaces = network.get("interfaces") or {}
        if interfaces:
            for key, doc in _NET:
                family = CounterMetricFamily(f"meshhub_network_{key}",
                                             f"{doc} on the interface", labels=["interface"])
                for name, counters in interfaces.items():
                    if counters.get(key) is not None:
                        family.add_metric([name], float(counters[key]))
                yield family
            up = GaugeMetricFamily("meshhub_network_up", "1 when the interface is up",
                                   labels=["interface"])
            for name, counters in interfaces.items():
                if counters.get("up") is not None:
                    up.add_metric([name], 1.0 if counters["up"] else 0.0)
            yield up
        uplink = network.get("uplink") or {}
        if uplink.get("present") is not None:
            yield GaugeMetricFamily("meshhub_uplink_up",
                                    "1 when a default route leaves through the uplink (and, "
                                    "where the agent checks it, the uplink answers)",
                                    value=1.0 if uplink["present"] else 0.0)
        if isinstance(uplink.get("announced"), bool):
            yield GaugeMetricFamily("meshhub_uplink_announced",
                                    "1 while this node offers the mesh its default route",
                                    value=1.0 if uplink["announced"] else 0.0)
        for key, doc in (("withdrawals", "Times the uplink was found down and its default "
                          "route withdrawn from the mesh"),
                         ("failed_checks", "Checks of the uplink that failed")):
            if isinstance(uplink.get(key), int):
                yield CounterMetricFamily(f"meshhub_uplink_{key}", doc, value=uplink[key])

    def _clients_services(self, sample: Json) -> Iterator[Metric]:
        clients = sample.get("clients") or {}
        yield from _gauge("meshhub_dhcp_leases", "Current DHCP leases (residents' devices)",
                          clients.get("dhcp_leases"))
        yield from _gauge("meshhub_gate_allowed_clients",
                          "Devices let through the captive gate", clients.get("gate_allowed"))
        services = sample.get("services") or {}
        family = GaugeMetricFamily("meshhub_service_up", "1 when the service runs, 0 when not",
                                   labels=["service"])
        for name, state in sorted(services.items()):
            if state in ("up", "down"):
                family.add_metric([name], 1.0 if state == "up" else 0.0)
        if family.samples:
            yield family


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _mesh(mesh: Any) -> Iterator[Metric]:
    """The ``meshhub_mesh_*`` families from the sample's mesh part (nothing when absent)."""
    if not isinstance(mesh, dict):
        return
    listed = [n for n in mesh.get("neighbours") or [] if isinstance(n, dict)]
    per_link = {
        "cost": GaugeMetricFamily(
            "meshhub_mesh_neighbour_cost", "babeld's cost of the link to the neighbour "
            "(what it adds for this hop; 65535 = unusable)", labels=["neighbour", "interface"]),
        "rxcost": GaugeMetricFamily(
            "meshhub_mesh_neighbour_rxcost", "babeld's receive cost of the link (from the "
            "hellos this node hears)", labels=["neighbour", "interface"]),
        "txcost": GaugeMetricFamily(
            "meshhub_mesh_neighbour_txcost", "babeld's transmit cost of the link (as the "
            "neighbour reports hearing this node)", labels=["neighbour", "interface"]),
        "reach_ratio": GaugeMetricFamily(
            "meshhub_mesh_neighbour_reachability_ratio", "Share of the neighbour's last 16 "
            "hellos heard (babeld's reach bitmap, 0-1)", labels=["neighbour", "interface"]),
    }
    info = GaugeMetricFamily("meshhub_mesh_neighbour_info", "1 for each neighbour, with the "
                             "mesh address it announces", labels=["neighbour", "interface",
                                                                  "node"])
    usable = 0
    seen: set[tuple[str, str]] = set()
    for neighbour in listed[:MAX_NEIGHBOUR_SERIES]:
        labels = (str(neighbour.get("address") or ""), str(neighbour.get("interface") or ""))
        if not labels[0] or labels in seen:
            continue
        seen.add(labels)
        cost = _number(neighbour.get("cost"))
        if cost is not None and cost < 0xFFFF:
            usable += 1
        for key, family in per_link.items():
            value = _number(neighbour.get(key))
            if value is not None:
                family.add_metric(list(labels), value)
        if isinstance(neighbour.get("node"), str):
            info.add_metric([*labels, neighbour["node"]], 1.0)
    yield GaugeMetricFamily("meshhub_mesh_neighbours", "Neighbours babeld hears with a usable "
                            "link (cost below 65535)", value=usable)
    yield from (family for family in per_link.values() if family.samples)
    if info.samples:
        yield info
    routes = _number(mesh.get("routes"))
    if routes is not None:
        yield GaugeMetricFamily("meshhub_mesh_routes", "Routes babeld installed in the kernel "
                                "and can use now", value=routes)
    nodes = mesh.get("nodes")
    if isinstance(nodes, list):
        yield GaugeMetricFamily("meshhub_mesh_nodes", "Other nodes reachable over the mesh "
                                "now (mesh addresses with a route)", value=len(nodes))


def make_registry(snapshot: Snapshot, extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry holding only the health metrics (no process/platform defaults) and the
    ``extra`` collectors of other agent parts (roaming's counts)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthMetrics(snapshot))
    for collector in extra:
        registry.register(collector)
    return registry
