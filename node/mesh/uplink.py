"""The uplink's health decides whether this node offers the mesh a way to the internet.

A gateway node (``clients.uplink_interface``) checks its uplink every
``clients.uplink_check_seconds``: the interface is up, a default route leaves through
it, and (when ``clients.uplink_check`` names targets) one of them answers a TCP
connection made through the uplink alone (``SO_BINDTODEVICE``; a refusal counts: a
reset came back over the line). The check decides, babeld does the routing:

* **healthy**: the agent keeps an *announcement route* in the kernel, a copy of the
  uplink's default route with protocol :data:`ANNOUNCE_PROTO` and a metric
  (:data:`ANNOUNCE_METRIC`) that never wins over a real route. ``babeld.conf``
  redistributes exactly that (``redistribute proto 201 ip 0.0.0.0/0 eq 0 allow``), so
  the mesh learns a default route towards this node;
* **down** at once when the uplink loses its carrier or its default route, and after
  ``clients.uplink_check_failures`` failed checks in a row when the targets fall silent: the
  announcement route goes (babeld retracts the default route at once, and the other
  nodes take another gateway's) and the uplink's own default routes are *demoted*
  (their metric raised by :data:`DEMOTE_OFFSET`), so this node's own traffic and its
  residents' follow babeld's default route to another gateway too. A demoted route
  stays, for the checks (bound to the uplink) and as the last resort when no other
  gateway exists;
* **back** after as many good checks in a row: the routes are restored and announced.

At every check, while the uplink's interface exists, it also keeps CAKE on it at the
configured speeds (:mod:`node.mesh.shaping`): a fair share for every resident.

A gateway without mesh routing (``mesh.routing = false``: a stand-alone node, no babeld)
has nothing to announce and no other gateway to fail over to: its watch only checks
(for the health document) and keeps CAKE, and leaves the uplink's routes as they are.

The watch runs on its own thread (a check may wait up to a second for a TCP answer),
and re-applies its state at every check, so a DHCP client that re-adds a route or a
restarted babeld is corrected within one interval. On stop everything is restored and
the announcement removed (babeld stops too and retracts what it announced).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.frozen import frozen
from node.health.probes import Runner, json_rows, run_command
from node.mesh.shaping import UplinkShaping, uplink_shaping
from node.net.render_babeld import UPLINK_ANNOUNCE_PROTO

log = logging.getLogger("meshhub.uplink")

#: The kernel route protocol number of the announcement route (unused by iproute2's
#: list; babeld's own routes are 42). babeld redistributes exactly this protocol's default.
ANNOUNCE_PROTO = UPLINK_ANNOUNCE_PROTO
#: Metric of the announcement route: above any real route's, so it never carries traffic.
ANNOUNCE_METRIC = 1_000_000_000
#: Added to the metric of the uplink's default routes while the uplink is down, so that
#: babeld's default route (metric 0) towards another gateway wins.
DEMOTE_OFFSET = 2_000_000_000
#: The longest a single target may take to answer, in seconds.
CHECK_TIMEOUT_SECONDS = 1.0


@frozen
class Route:
    """One IPv4 default route of the main table that leaves through the uplink."""

    gateway: str | None
    metric: int
    protocol: str

    def argv(self, interface: str, metric: int, protocol: str | int) -> list[str]:
        """``ip route`` arguments naming this route (with another metric/protocol)."""
        via = ["via", self.gateway] if self.gateway else []
        return ["default", *via, "dev", interface, "proto", str(protocol), "metric", str(metric)]


@dataclass
class UplinkStatus:
    """What the technicians see (health document, ``/metrics``)."""

    interface: str
    healthy: bool | None = None  #: None until the first check
    announced: bool = False
    reason: str = "not checked yet"
    since: float | None = None  #: when ``healthy`` last changed (Unix time)
    withdrawals: int = 0  #: times the default route was withdrawn from the mesh
    checks: int = 0
    failed_checks: int = 0
    #: CAKE on the uplink (node.mesh.shaping): what is applied, or why not.
    fairness: str = "not checked yet"

    def as_json(self) -> dict[str, Any]:
        """The ``network.uplink`` details of the health document."""
        return {"healthy": self.healthy, "announced": self.announced, "reason": self.reason,
                "since": self.since, "withdrawals": self.withdrawals, "checks": self.checks,
                "failed_checks": self.failed_checks, "fairness": self.fairness}


def parse_target(text: str) -> tuple[str, int]:
    """``"192.0.2.1:80"`` as (address, port) (``node.toml`` checked its form)."""
    host, _sep, port = text.rpartition(":")
    return host, int(port)


def tcp_answers(interface: str, host: str, port: int, timeout: float) -> str | None:
    """None when ``host:port`` answers a connection made through ``interface`` only (an
    accept or a refusal: either came back over the line), else why not."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.settimeout(timeout)
        code = sock.connect_ex((host, port))
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"
    finally:
        sock.close()
    if code in (0, errno.ECONNREFUSED):
        return None
    if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINPROGRESS, errno.ETIMEDOUT):
        return f"{host}:{port}: no answer within {timeout:g} s"
    return f"{host}:{port}: {errno.errorcode.get(code, code)}"


def default_routes(runner: Runner) -> list[tuple[str, Route]] | None:
    """The main table's IPv4 default routes as (interface, route), babeld's left out; None
    when ``ip`` fails."""
    rows = json_rows(runner, ["ip", "-j", "-4", "route", "show", "default", "table", "main"])
    if rows is None:
        return None
    routes = []
    for row in rows:
        protocol = str(row.get("protocol", "boot"))
        if protocol not in ("babel", "42") and row.get("dev"):
            routes.append((str(row["dev"]),
                           Route(row.get("gateway"), int(row.get("metric", 0)), protocol)))
    return routes


def link_state(interface: str, sys_class_net: Path = Path("/sys/class/net")) -> str:
    """The interface's operstate (``up``, ``down``, ``lowerlayerdown``, ...) or
    ``missing``."""
    try:
        return (sys_class_net / interface / "operstate").read_text().strip().lower()
    except OSError:
        return "missing"


@dataclass
class UplinkWatch:
    """Checks the uplink and announces or withdraws the mesh's default route (see above)."""

    interface: str
    targets: Sequence[tuple[str, int]] = ()
    interval: float = 2.0
    failures: int = 2
    runner: Runner = run_command
    probe: Callable[[str, str, int, float], str | None] = tcp_answers
    link: Callable[[str], str] = link_state
    clock: Callable[[], float] = time.time
    #: Keeps CAKE on the uplink while its interface is there (None: not this watch's job).
    shaping: UplinkShaping | None = None
    #: Offer the mesh a default route and demote the uplink's own when it fails (mesh
    #: routing on); False: a stand-alone gateway, whose routes are left alone.
    announce: bool = True
    status: UplinkStatus = field(init=False)
    _streak: int = field(init=False, default=0)  #: checks in a row against the state
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _thread: threading.Thread | None = field(init=False, default=None)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.status = UplinkStatus(self.interface)

    # --- the check -----------------------------------------------------------------
    def check(self) -> str | None:
        """None when the uplink works, else why not (one line, for technicians)."""
        return self.local_fault() or self.targets_silent()

    def targets_silent(self) -> str | None:
        """None when one of the targets answers through the uplink (or none is set),
        else what each said."""
        if not self.targets:
            return None
        timeout = min(CHECK_TIMEOUT_SECONDS, self.interval)
        reasons = []
        for host, port in self.targets:
            reason = self.probe(self.interface, host, port, timeout)
            if reason is None:
                return None
            reasons.append(reason)
        return "; ".join(reasons)

    def local_fault(self) -> str | None:
        """What this node itself sees wrong with the uplink (no carrier, no default route),
        or None. Such a fault is certain at once: no need to wait for a second check."""
        state = self.link(self.interface)
        if state not in ("up", "unknown"):
            return f"{self.interface} is {state}"
        routes = self._routes()
        if routes is None:
            return "cannot read the routing table"
        if not [r for r in routes if r.protocol != str(ANNOUNCE_PROTO)]:
            return f"no default route through {self.interface}"
        return None

    def step(self) -> None:
        """One check, then the state it calls for applied to the kernel's routes."""
        local = self.local_fault()
        reason = local or self.targets_silent()
        ok = reason is None
        with self._lock:
            s = self.status
            s.checks += 1
            s.failed_checks += 0 if ok else 1
            if s.healthy is None or (s.healthy and local is not None):
                # The first check decides at once (a node booting), and so does a cable
                # pulled or a route gone: only silence needs confirming.
                self._change(ok, reason)
            elif ok != s.healthy:
                self._streak += 1
                if self._streak >= self.failures:
                    self._change(ok, reason)
            else:
                self._streak = 0
                s.reason = reason or "the uplink answers"
            healthy = bool(s.healthy)
        self._apply(healthy)
        if self.shaping is not None and self.link(self.interface) != "missing":
            fairness = self.shaping.ensure()
            with self._lock:
                self.status.fairness = fairness

    def _change(self, ok: bool, reason: str | None) -> None:
        s = self.status
        if s.healthy and not ok:
            s.withdrawals += 1
        s.healthy, s.since, self._streak = ok, self.clock(), 0
        s.reason = reason or "the uplink answers"
        if not self.announce:
            log.warning("uplink %s: %s", self.interface, "works" if ok else f"down ({s.reason})")
            return
        log.warning("uplink %s: %s", self.interface,
                    "works: default route announced to the mesh" if ok
                    else f"down ({s.reason}): default route withdrawn from the mesh")

    # --- the kernel's routes ---------------------------------------------------------
    def _ip(self, *argv: str) -> bool:
        status, _out, err = self.runner(["ip", "-4", "route", *argv])
        if status != 0:
            log.warning("uplink: ip route %s: %s", " ".join(argv), err.strip())
        return status == 0

    def _routes(self) -> list[Route] | None:
        """The uplink's default routes, the announcement among them (its protocol)."""
        rows = default_routes(self.runner)
        return None if rows is None else [r for dev, r in rows if dev == self.interface]

    def _apply(self, healthy: bool) -> None:
        routes = self._routes() or []
        announcements = [r for r in routes if r.protocol == str(ANNOUNCE_PROTO)]
        real = [r for r in routes if r.protocol != str(ANNOUNCE_PROTO)]
        if self.announce and healthy:
            self._restore(real)  # first: the node's own traffic leaves here again
            if real and not announcements:
                best = min(real, key=lambda r: r.metric % DEMOTE_OFFSET)
                self._ip("replace", *best.argv(self.interface, ANNOUNCE_METRIC, ANNOUNCE_PROTO))
            announced = bool(real)
        else:
            self._withdraw(announcements)
            if self.announce:  # down: the node's own traffic goes through another gateway
                for route in real:
                    if route.metric < DEMOTE_OFFSET:
                        self._move(route, route.metric + DEMOTE_OFFSET)
            else:  # no mesh routing: what an earlier run with mesh routing left is undone
                self._restore(real)
            announced = False
        with self._lock:
            self.status.announced = announced

    def _restore(self, real: list[Route]) -> None:
        """Put demoted routes back at their own metrics."""
        for route in real:
            if route.metric >= DEMOTE_OFFSET:
                self._move(route, route.metric - DEMOTE_OFFSET)

    def _withdraw(self, announcements: list[Route]) -> None:
        for route in announcements:
            self._ip("del", *route.argv(self.interface, route.metric, ANNOUNCE_PROTO))

    def _move(self, route: Route, metric: int) -> None:
        """The same route at another metric (added first: never a moment without it)."""
        if self._ip("replace", *route.argv(self.interface, metric, route.protocol)):
            self._ip("del", *route.argv(self.interface, route.metric, route.protocol))

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Check now, then every ``interval`` seconds on a thread of its own."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="meshhub-uplink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.step()
            except Exception as exc:  # the agent outlives any one bad check
                log.warning("uplink: check failed: %s: %s", type(exc).__name__, exc)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def stop(self) -> None:
        """Stop checking; restore the uplink's routes and remove the announcement."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=5 * CHECK_TIMEOUT_SECONDS + self.interval)
            routes = self._routes() or []
            self._withdraw([r for r in routes if r.protocol == str(ANNOUNCE_PROTO)])
            for route in routes:
                if route.protocol != str(ANNOUNCE_PROTO) and route.metric >= DEMOTE_OFFSET:
                    self._move(route, route.metric - DEMOTE_OFFSET)

    def health(self) -> dict[str, Any]:
        """A copy of the status for the health document."""
        with self._lock:
            return self.status.as_json()


def uplink_watch(cfg: Any) -> UplinkWatch | None:
    """The node's watch, or None when it has no uplink. Without mesh routing it only
    checks and keeps CAKE (a stand-alone gateway shares its line fairly too)."""
    clients = cfg.clients
    if not clients.uplink_interface:
        return None
    return UplinkWatch(clients.uplink_interface,
                       targets=[parse_target(t) for t in clients.uplink_check],
                       interval=float(clients.uplink_check_seconds),
                       failures=int(clients.uplink_check_failures),
                       shaping=uplink_shaping(cfg), announce=bool(cfg.mesh.routing))
