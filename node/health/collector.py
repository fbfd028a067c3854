"""The health collector: one sample of the node's state, as a JSON-ready dict.

Everything the collector reads comes through :class:`Sources`, a set of small
callables whose defaults read the real machine (psutil, netifaces, the
``hardware`` package, systemd, nft).  Tests and the benchmark replace any of
them.  A source that fails gives ``None`` in the sample ("absent"), never a
made-up value, and the failure is logged once with a count.

The sample's shape is documented in ``docs/health.md`` (schema version
:data:`SCHEMA_VERSION`); change both together.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.frozen import frozen
from node.health import probes
from node.logs import OnceLogger

log = logging.getLogger("meshhub.health")

#: Version of the health document's layout; bump it when a field changes meaning.
SCHEMA_VERSION = 1
#: Said in the document when there is no mesh data (absent, not zero).
MESH_ABSENT_NOTE = ("no mesh data: mesh.routing is off, or babeld is not running or not read "
                    "yet; absent, not zero")
#: Caps that keep one sample (and so one response) small whatever the machine reports.
MAX_INTERFACES = 128
MAX_SENSORS = 64
MAX_READINGS_PER_SENSOR = 16
#: Largest believable value of a reading; anything beyond is treated as garbage.
MAX_ABS_VALUE = 1e15

Json = dict[str, Any]
#: Seconds between two reads of what changes in months, not between samples: which
#: partition holds the data folder (``/proc/mounts``) and its card's or eMMC's wear.
STORAGE_READ_SECONDS = 600.0


@frozen
class SensorReading:
    """One sensor's latest values, or why it has none.

    ``category`` groups the quantities (``power``, ``environment``) and with
    each key of ``values`` forms the metric name: category ``power`` and key
    ``bus_voltage_volts`` -> ``meshhub_power_bus_voltage_volts``.  Keys end in
    their base unit (``_volts``, ``_amperes``, ``_watts``, ``_celsius``,
    ``_ratio``, ``_pascals``).
    """

    name: str
    category: str
    chip: str
    available: bool
    values: Mapping[str, float | None] = field(default_factory=dict)
    reason: str = ""


@frozen
class NetCounters:
    """Byte, packet and error counters of one interface since it appeared."""

    receive_bytes: int
    transmit_bytes: int
    receive_packets: int
    transmit_packets: int
    receive_errors: int
    transmit_errors: int


def _psutil_net() -> dict[str, NetCounters]:
    import psutil

    return {name: NetCounters(c.bytes_recv, c.bytes_sent, c.packets_recv, c.packets_sent,
                              c.errin, c.errout)
            for name, c in psutil.net_io_counters(pernic=True).items()}


def _psutil_if_up() -> dict[str, bool]:
    import psutil

    return {name: stats.isup for name, stats in psutil.net_if_stats().items()}


def _default_route_interfaces() -> set[str]:
    import netifaces

    defaults = netifaces.gateways().get("default", {})
    entries = defaults.values() if isinstance(defaults, dict) else defaults
    return {entry[1] for entry in entries if isinstance(entry, tuple)}


def _ipv4_addresses() -> dict[str, list[str]]:
    import netifaces

    found: dict[str, list[str]] = {}
    for name in netifaces.interfaces():
        entries = netifaces.ifaddresses(name).get(netifaces.AF_INET, [])
        found[name] = [e["addr"] for e in entries if "addr" in e]
    return found


def _no_sensors() -> list[SensorReading]:
    return []


def _none() -> None:
    return None


def software_version() -> str:
    """The installed meshhub version, or ``unknown`` when running from a bare checkout.

    Read from the installed package's ``METADATA`` (what ``importlib.metadata`` reads),
    without importing ``importlib.metadata``: its zipfile, csv and email parsers would
    stay in every agent's memory for one string.
    """
    for folder in sys.path:
        try:
            entries = os.listdir(folder or ".")
        except OSError:
            continue
        for entry in sorted(entries):
            if entry.startswith("meshhub-") and entry.endswith(".dist-info"):
                try:
                    text = (Path(folder or ".") / entry / "METADATA").read_text("utf-8")
                except OSError:
                    continue
                for line in text.splitlines():
                    if line.startswith("Version:"):
                        return line.partition(":")[2].strip() or "unknown"
                    if not line:
                        break
    return "unknown"


@dataclass
class Sources:
    """Where each fact comes from.  Replace any field to test or simulate."""

    cpu_usage_percent: Callable[[], float] = field(default=lambda: _psutil().cpu_percent(None))
    cpu_count: Callable[[], int | None] = field(default=lambda: os.cpu_count())
    load_average: Callable[[], tuple[float, float, float]] = field(default=os.getloadavg)
    memory: Callable[[], Any] = field(default=lambda: _psutil().virtual_memory())
    disk_usage: Callable[[str], Any] = field(default=lambda path: _psutil().disk_usage(path))
    boot_time: Callable[[], float] = field(default=lambda: _psutil().boot_time())
    partition_of: Callable[[str], str | None] = field(default=lambda path: _partition_of(path))
    net_counters: Callable[[], dict[str, NetCounters]] = _psutil_net
    interfaces_up: Callable[[], dict[str, bool]] = _psutil_if_up
    ipv4_addresses: Callable[[], dict[str, list[str]]] = _ipv4_addresses
    default_route_interfaces: Callable[[], set[str]] = _default_route_interfaces
    soc_temperature_celsius: Callable[[], float | None] = _none
    throttling: Callable[[], Mapping[str, bool] | None] = _none
    board_model: Callable[[], str | None] = _none
    sensors: Callable[[], list[SensorReading]] = _no_sensors
    service_states: Callable[[], dict[str, str]] = field(default=dict)
    #: The ``mesh`` part (node.mesh: neighbours, link costs, routes) or None when absent.
    mesh: Callable[[], Json | None] = _none
    #: The ``update`` part (node.update: running version, update state) or None when off.
    update: Callable[[], Json | None] = _none
    #: The agent's check of the uplink (node.mesh.uplink: healthy, announced, reason) or
    #: None when it does not check (no uplink).
    uplink: Callable[[], Json | None] = _none
    runner: probes.Runner = probes.run_command
    #: nftables' generation (a set's elements changed: :class:`probes.GateAllowedCount`).
    nft_generation: Callable[[], int | None] = probes.nftables_generation
    sys_root: Path = Path("/sys")
    clock: Callable[[], float] = time.time


def _psutil() -> Any:
    import psutil

    return psutil


def _partition_of(path: str) -> str | None:
    import psutil

    best = ""
    device = None
    target = os.path.realpath(path)
    for part in psutil.disk_partitions(all=False):
        mount = part.mountpoint.rstrip("/") + "/"
        if (target + "/").startswith(mount) and len(mount) > len(best):
            best, device = mount, part.device
    return device


@frozen
class CollectorSettings:
    """What the collector needs from ``node.toml`` (see ``[health]``)."""

    node_name: str = "meshhub-node"
    node_key: str = ""  #: the node's public key (hex), from its identity; "" when none yet
    data_dir: str = "/var/lib/meshhub"
    leases_file: str = "/var/lib/misc/dnsmasq.leases"
    uplink_interface: str = ""
    services: Sequence[str] = ()
    location: str = ""  #: node.location, for people
    coordinates: tuple[float, float] | None = None  #: node.coordinates, for the mesh map


class Collector:
    """Takes samples of the node's health; one instance per agent.

    :meth:`sample` is cheap (a few milliseconds) and never raises for a
    broken source: that source's part of the document is ``None`` and the
    problem is logged once (see :attr:`problems`).
    """

    def __init__(self, settings: CollectorSettings, sources: Sources | None = None) -> None:
        self.settings = settings
        self.sources = sources or Sources()
        self.problems = OnceLogger(log)
        self._version = software_version()
        self._model: str | None = self._safe("board:model", self.sources.board_model)
        #: The gate's allow set, counted by ``nft`` only when it may have changed.
        self._gate_allowed = probes.GateAllowedCount(self.sources.runner,
                                                     self.sources.nft_generation)
        #: (when to read again, the storage's wear): STORAGE_READ_SECONDS apart.
        self._storage: tuple[float, Json | None] | None = None
        self._safe("cpu", self.sources.cpu_usage_percent)  # the first reading is meaningless

    def sample(self) -> Json:
        """Read every source once and return the health document (without alerts)."""
        started = time.perf_counter()
        s = self.sources
        now = s.clock()
        doc: Json = {
            "schema_version": SCHEMA_VERSION,
            "time": round(now, 3),
            "node": {"name": self.settings.node_name, "key": self.settings.node_key or None,
                     "version": self._version,
                     "model": self._model, "location": self.settings.location,
                     "coordinates": (list(self.settings.coordinates)
                                     if self.settings.coordinates else None)},
            "uptime_seconds": self._uptime(now),
            "cpu": self._cpu(),
            "memory": self._memory(),
            "disk": self._disk(),
            "soc": {"temperature_celsius": _number(self._safe("soc:temp",
                                                              s.soc_temperature_celsius)),
                    "throttling": self._throttling()},
            "sensors": self._sensors(),
            "network": self._network(),
            "clients": {
                "dhcp_leases": probes.count_dhcp_leases(Path(self.settings.leases_file),
                                                        self.problems, now),
                "gate_allowed": self._gate_allowed(self.problems),
            },
            "services": self._services(),
            "mesh": (mesh := self._safe("mesh", s.mesh)),
            "mesh_note": MESH_ABSENT_NOTE if mesh is None else "from babeld's monitoring socket",
            "update": self._safe("update", s.update),
        }
        doc["collect_seconds"] = round(time.perf_counter() - started, 6)
        return doc

    # --- parts ---------------------------------------------------------------

    def _safe(self, key: str, read: Callable[[], Any]) -> Any:
        try:
            value = read()
        except Exception as exc:  # a source may fail in any way; the agent keeps going
            self.problems.warning(key, "health source %s failed: %s: %s", key,
                                  type(exc).__name__, exc)
            return None
        self.problems.resolved(key)
        return value

    def _uptime(self, now: float) -> float | None:
        boot = _number(self._safe("uptime", self.sources.boot_time))
        return None if boot is None else round(max(0.0, now - boot), 1)

    def _cpu(self) -> Json:
        percent = _number(self._safe("cpu", self.sources.cpu_usage_percent))
        load = self._safe("load", self.sources.load_average) or (None, None, None)
        return {"usage_ratio": None if percent is None else round(min(percent, 100.0) / 100, 4),
                "load1": _number(load[0]), "load5": _number(load[1]), "load15": _number(load[2]),
                "count": self._safe("cpu:count", self.sources.cpu_count)}

    def _memory(self) -> Json:
        mem = self._safe("memory", self.sources.memory)
        if mem is None:
            return {"total_bytes": None, "used_bytes": None, "available_bytes": None}
        return {"total_bytes": _int(mem.total), "used_bytes": _int(mem.total - mem.available),
                "available_bytes": _int(mem.available)}

    def _disk(self) -> Json:
        path = self.settings.data_dir
        probe = path if os.path.exists(path) else os.path.dirname(path.rstrip("/")) or "/"
        usage = self._safe("disk", lambda: self.sources.disk_usage(probe))
        wear = self._wear(probe)
        total = _int(getattr(usage, "total", None))
        used = _int(getattr(usage, "used", None))
        free = _int(getattr(usage, "free", None))
        ratio = None
        if total and used is not None and free is not None and used + free > 0:
            ratio = round(used / (used + free), 4)  # as df: reserved blocks count as not free
        return {"path": path, "size_bytes": total, "used_bytes": used, "free_bytes": free,
                "used_ratio": ratio, "wear": wear}

    def _wear(self, probe: str) -> Json | None:
        """The wear of the card or eMMC holding ``probe``, read again only every
        :data:`STORAGE_READ_SECONDS` (each read looks through ``/proc/mounts`` and sysfs)."""
        now = time.monotonic()
        if self._storage is not None and now < self._storage[0]:
            return self._storage[1]
        partition = self._safe("disk:partition", lambda: self.sources.partition_of(probe))
        wear = None
        if partition:
            found = probes.storage_wear(self.sources.sys_root,
                                        probes.block_device_of(partition), self.problems)
            if found is not None:
                wear = {"device": found.device, "life_used_a_ratio": found.life_used_a_ratio,
                        "life_used_b_ratio": found.life_used_b_ratio, "pre_eol": found.pre_eol}
        self._storage = (now + STORAGE_READ_SECONDS, wear)
        return wear

    def _throttling(self) -> Json | None:
        flags = self._safe("soc:throttling", self.sources.throttling)
        if flags is None:
            return None
        return {str(k): bool(v) for k, v in list(flags.items())[:32]}

    def _sensors(self) -> list[Json]:
        readings = self._safe("sensors", self.sources.sensors) or []
        out: list[Json] = []
        for reading in readings[:MAX_SENSORS]:
            values = {str(k): _number(v)
                      for k, v in list(reading.values.items())[:MAX_READINGS_PER_SENSOR]}
            out.append({"name": reading.name, "category": reading.category, "chip": reading.chip,
                        "available": bool(reading.available) and any(
                            v is not None for v in values.values()),
                        "values": values, "reason": reading.reason})
        return out

    def _network(self) -> Json:
        s = self.sources
        counters = self._safe("net:counters", s.net_counters) or {}
        up = self._safe("net:up", s.interfaces_up) or {}
        addresses = self._safe("net:addresses", s.ipv4_addresses) or {}
        routes = self._safe("net:routes", s.default_route_interfaces)
        interfaces: Json = {}
        for name in sorted(counters)[:MAX_INTERFACES]:
            c = counters[name]
            interfaces[name] = {
                "up": up.get(name), "ipv4": list(addresses.get(name, []))[:8],
                "receive_bytes": _int(c.receive_bytes), "transmit_bytes": _int(c.transmit_bytes),
                "receive_packets": _int(c.receive_packets),
                "transmit_packets": _int(c.transmit_packets),
                "receive_errors": _int(c.receive_errors),
                "transmit_errors": _int(c.transmit_errors)}
        wanted = self.settings.uplink_interface
        if routes is None:
            present = None
        elif wanted:
            present = wanted in routes
        else:
            present = bool(routes)
        uplink: Json = {"interface": wanted or (sorted(routes)[0] if routes else None),
                        "configured": bool(wanted), "present": present}
        checked = self._safe("uplink", s.uplink) if wanted else None
        if isinstance(checked, dict):
            # The agent's check decides: a route through a dead line is no uplink.
            uplink.update(checked)
            if checked.get("healthy") is not None:
                uplink["present"] = bool(checked["healthy"]) and present is not False
        return {"interfaces": interfaces, "uplink": uplink}

    def _services(self) -> dict[str, str]:
        states = self._safe("services", self.sources.service_states) or {}
        return {str(k): v if v in ("up", "down") else "unknown"
                for k, v in list(states.items())[:64]}


def _number(value: Any) -> float | None:
    """A finite, believable float, or ``None`` for garbage (NaN, inf, absurd sizes, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or abs(value) > MAX_ABS_VALUE:
        return None
    return round(float(value), 6)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0 or value >= 2**63:
        return None
    return int(value)
