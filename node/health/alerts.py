"""Alerts: conditions on health samples, each with a start, an end and what to check.

Every kind is declared once in :data:`KINDS` with a plain-language
explanation for the technician who reads it on a roof.  :class:`AlertTracker`
turns a stream of samples into alerts that start when a condition becomes
true and end when it clears.

``node_lost`` and ``link_degraded`` read the mesh part of the sample (babeld's
neighbour table, as :meth:`node.mesh.MeshService.health` gives it).  They are
evaluated only when a sample carries it: with ``mesh.routing`` off, or while
babeld is down or not read yet, ``sample["mesh"]`` is ``None`` and the mesh
alerts already active are kept as they are (neither confirmed nor cleared),
and none start.  ``node_lost`` needs history, so :class:`NeighbourWatch`
remembers every neighbour heard since the agent started.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from node.frozen import frozen

Json = dict[str, Any]


@frozen
class AlertKind:
    """What an alert means and what a technician should check."""

    kind: str
    title: str
    check: str
    needs_mesh: bool = False


KINDS: dict[str, AlertKind] = {k.kind: k for k in (
    AlertKind("node_lost", "A neighbour node stopped answering",
              "Is the neighbour powered (look at its LED)? Did its power supply or battery "
              "fail, or did something block the radio path (new building, tree in leaf)?",
              needs_mesh=True),
    AlertKind("link_degraded", "A radio link to a neighbour is poor",
              "Check the antenna's direction and cable, new obstacles, and interference "
              "(run 'meshhub diag survey'); a cost that keeps rising means the link is failing.",
              needs_mesh=True),
    AlertKind("disk_full", "The data partition is nearly full",
              "Look at the library's size and the logs in the data directory; remove old "
              "library items or move to a larger SD card. Writes fail when it is full."),
    AlertKind("sd_wear", "The SD card or eMMC reports heavy wear",
              "Plan to replace the card soon; back up the node's identity key first."),
    AlertKind("too_hot", "The processor is too hot",
              "Is the case in direct sun or sealed? Add shade, ventilation or a heatsink; "
              "the board slows itself down when hot and may crash."),
    AlertKind("undervoltage", "The supply voltage is too low",
              "Use a stronger power supply and a short, thick cable; on solar or battery "
              "nodes check the battery's charge and the panel. Undervoltage corrupts SD cards."),
    AlertKind("throttled", "The processor is being slowed down",
              "The firmware limits speed when hot or underpowered: see 'too hot' and "
              "'undervoltage'."),
    AlertKind("sensor_unavailable", "A sensor does not answer",
              "Check the sensor's wiring (SDA, SCL, power, ground) and its I2C address with "
              "'meshhub hw detect'; water in the case often causes this."),
    AlertKind("uplink_down", "The internet uplink is down",
              "Is the uplink cable or router powered and connected? The hub still works "
              "locally; while another node of the mesh has a working uplink, residents "
              "reach the internet through it, otherwise they lose only the internet."),
    AlertKind("service_down", "A service of the node is not running",
              "Read its log ('journalctl -u SERVICE -n 50') and restart it "
              "('systemctl restart SERVICE'); if it keeps failing, check the disk and the "
              "configuration with 'meshhub config check'."),
)}


@frozen
class Thresholds:
    """Alert thresholds from ``node.toml`` (``[health]``)."""

    disk_full_percent: float = 90.0
    too_hot_celsius: float = 75.0
    low_voltage_volts: float = 0.0  #: 0 turns the power-monitor voltage check off
    uplink_required: bool = False
    link_degraded_cost: float = 1024.0
    sd_wear_ratio: float = 0.9
    #: A neighbour not heard for this long (from this node's point of view) is lost.
    node_lost_seconds: float = 60.0


@dataclass
class Alert:
    """One alert: active while ``ended`` is ``None``."""

    kind: str
    subject: str
    started: float
    detail: str
    ended: float | None = None

    def as_dict(self) -> Json:
        """The JSON form used by ``/api/health`` and the history, with title and advice."""
        info = KINDS[self.kind]
        return {**asdict(self), "title": info.title, "check": info.check}


def conditions(sample: Json, limits: Thresholds) -> Iterator[tuple[str, str, str]]:
    """Every condition true in ``sample`` alone, as (kind, subject, detail).

    The mesh alerts need the samples before this one too: see :class:`NeighbourWatch`.
    """
    disk = sample.get("disk") or {}
    ratio = disk.get("used_ratio")
    if ratio is not None and ratio * 100 >= limits.disk_full_percent:
        yield ("disk_full", disk.get("path", ""),
               f"{ratio:.0%} used, alert at {limits.disk_full_percent:g}%")
    wear = disk.get("wear") or {}
    worst = max((w for w in (wear.get("life_used_a_ratio"), wear.get("life_used_b_ratio"))
                 if w is not None), default=None)
    if (worst is not None and worst >= limits.sd_wear_ratio) or wear.get("pre_eol") in (
            "warning", "urgent"):
        eol = wear.get("pre_eol")
        yield "sd_wear", wear.get("device", ""), f"life used up to {worst}, pre-EOL {eol}"
    soc = sample.get("soc") or {}
    temp = soc.get("temperature_celsius")
    if temp is not None and temp >= limits.too_hot_celsius:
        yield "too_hot", "soc", f"{temp:.1f} °C, alert at {limits.too_hot_celsius:g} °C"
    flags = soc.get("throttling") or {}
    if flags.get("under_voltage"):
        yield "undervoltage", "supply", "the firmware reports undervoltage now"
    active = [f for f in ("throttled", "frequency_capped", "soft_temperature_limit")
              if flags.get(f)]
    if active:
        yield "throttled", "soc", "the firmware reports: " + ", ".join(active)
    for sensor in sample.get("sensors") or []:
        if not sensor.get("available"):
            yield ("sensor_unavailable", sensor.get("name", ""),
                   sensor.get("reason") or "no reading")
            continue
        volts = (sensor.get("values") or {}).get("bus_voltage_volts")
        if limits.low_voltage_volts > 0 and volts is not None and volts < limits.low_voltage_volts:
            yield ("undervoltage", sensor.get("name", ""),
                   f"{volts:.2f} V, alert below {limits.low_voltage_volts:g} V")
    uplink = (sample.get("network") or {}).get("uplink") or {}
    if limits.uplink_required and uplink.get("present") is False:
        # The agent's check says why (node.mesh.uplink); without it, only the route is known.
        reason = uplink.get("reason") if uplink.get("healthy") is False else None
        yield ("uplink_down", uplink.get("interface") or "",
               str(reason or "no default route via the uplink"))
    for name, state in (sample.get("services") or {}).items():
        if state == "down":
            yield "service_down", name, f"{name} is not running"


#: babeld's cost of a link it cannot use (its "infinity", node.mesh.babel_parse.INFINITY).
LINK_DEAD_COST = 0xFFFF
#: Neighbours remembered for node_lost; beyond this the longest-unheard is forgotten.
MAX_KNOWN_NEIGHBOURS = 256


def _cost(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class NeighbourWatch:
    """Which neighbours this node has heard, and for how long a known one has been silent.

    A neighbour is named by the mesh address it announces (``node`` in the mesh
    part) once that is known, else by its link-local ``address``; the name is
    remembered, because babeld stops routing to a dying neighbour's address
    before it drops the neighbour.  A neighbour counts as heard while babeld
    lists it with a usable cost (below 65535).
    """

    def __init__(self, limits: Thresholds) -> None:
        self.limits = limits
        self._names: dict[str, str] = {}  #: link-local address -> mesh address
        #: name -> when last heard; None after a gap in mesh data (the count restarts).
        self._heard: dict[str, float | None] = {}
        self._where: dict[str, str] = {}  #: name -> "fe80::... on m-2", as last heard
        self._lost: set[str] = set()

    def _name(self, neighbour: Json) -> str:
        address = str(neighbour.get("address") or "")
        node = neighbour.get("node")
        if isinstance(node, str) and node and self._names.get(address) != node:
            self._names[address] = node
            self._heard.pop(address, None)  # known so far by its link-local address only
            self._where.pop(address, None)
            self._lost.discard(address)
        return self._names.get(address, address)

    def observe(self, mesh: Json, now: float) -> Iterator[tuple[str, str, str]]:
        """The mesh conditions of one sample's mesh part, as (kind, subject, detail)."""
        limits = self.limits
        heard: set[str] = set()
        for neighbour in mesh.get("neighbours") or []:
            if not isinstance(neighbour, dict):
                continue
            name = self._name(neighbour)
            cost = _cost(neighbour.get("cost"))
            if not name or cost is None or cost >= LINK_DEAD_COST:
                continue  # listed, but babeld no longer hears it: counted as not heard
            interface = str(neighbour.get("interface") or "")
            heard.add(name)
            self._heard[name] = now
            self._where[name] = (f"{neighbour.get('address')} on {interface}" if interface
                                 else str(neighbour.get("address")))
            if cost >= limits.link_degraded_cost:
                reach = _cost(neighbour.get("reach_ratio"))
                heard_text = "" if reach is None else f", {round(reach * 16)}/16 hellos heard"
                yield ("link_degraded", f"{name} on {interface}" if interface else name,
                       f"link cost {cost:g} (rxcost {neighbour.get('rxcost')}, txcost "
                       f"{neighbour.get('txcost')}{heard_text}), alert at "
                       f"{limits.link_degraded_cost:g}")
        self._lost -= heard
        for name, last in list(self._heard.items()):
            if name in heard:
                continue
            if last is None:  # mesh data came back after a gap: give it the full time
                self._heard[name] = last = now
            if now - last >= limits.node_lost_seconds:
                self._lost.add(name)
                yield ("node_lost", name,
                       f"neighbour {name} ({self._where.get(name, 'link unknown')}) not heard "
                       f"for {now - last:.0f} s, alert after {limits.node_lost_seconds:g} s")
        self._forget_oldest()

    def pause(self) -> None:
        """No mesh data in this sample: silence cannot be timed until it comes back."""
        for name in self._heard:
            if name not in self._lost:
                self._heard[name] = None

    def _forget_oldest(self) -> None:
        while len(self._heard) > MAX_KNOWN_NEIGHBOURS:
            oldest = min(self._heard, key=lambda n: self._heard[n] or 0.0)
            del self._heard[oldest]
            self._where.pop(oldest, None)
            self._lost.discard(oldest)


class AlertTracker:
    """Keeps the active alerts and reports which started and which ended.

    A lost neighbour stays "lost" (the alert stays active) until it is heard
    again or the agent restarts (which is how a node removed on purpose is
    forgotten).
    """

    def __init__(self, limits: Thresholds) -> None:
        self.limits = limits
        self.active: dict[tuple[str, str], Alert] = {}
        self.neighbours = NeighbourWatch(limits)

    def update(self, sample: Json) -> tuple[list[Alert], list[Alert]]:
        """Evaluate ``sample``; return (alerts that started, alerts that ended)."""
        now = float(sample["time"])
        found = {(kind, subject): detail
                 for kind, subject, detail in conditions(sample, self.limits)}
        mesh = sample.get("mesh")
        if isinstance(mesh, dict):
            found.update({(kind, subject): detail
                          for kind, subject, detail in self.neighbours.observe(mesh, now)})
        else:  # babeld not read: the mesh alerts can be neither confirmed nor cleared
            self.neighbours.pause()
            found.update({key: alert.detail for key, alert in self.active.items()
                          if KINDS[key[0]].needs_mesh})
        started: list[Alert] = []
        for key, detail in found.items():
            if key in self.active:
                self.active[key].detail = detail
            else:
                alert = Alert(key[0], key[1], now, detail)
                self.active[key] = alert
                started.append(alert)
        ended: list[Alert] = []
        for key in [k for k in self.active if k not in found]:
            alert = self.active.pop(key)
            alert.ended = now
            ended.append(alert)
        return started, ended

    def evaluated_kinds(self, sample: Json | None) -> list[str]:
        """Kinds that the latest sample could evaluate (mesh kinds only with mesh data)."""
        has_mesh = sample is not None and isinstance(sample.get("mesh"), dict)
        return [k for k, info in KINDS.items() if has_mesh or not info.needs_mesh]
