"""The agent keeps CAKE on the uplink: a fair share for every resident, on a real node.

``meshhub net apply`` runs the rendered ``uplink-shaping.sh`` once, but a node made from
the image never runs it (its links come from ``meshhub net up``, its daemons from the
agent), and the qdiscs go with the interface: a 4G dongle plugged in again, or a cable
whose interface a driver re-creates, comes back without them. So the agent's uplink
watch (:mod:`node.mesh.uplink`) asks :class:`UplinkShaping` at every check, while the
uplink's interface is there, to put back what is missing:

* the first time: the commands of :func:`node.net.render_shaping.cake_commands` (all
  ``replace``: a changed speed takes effect when the agent restarts), and what a
  direction that is now off (speed 0) left behind is removed: a ``cake`` root qdisc on
  the uplink, the ``ingress`` qdisc and the ifb device;
* afterwards only when ``tc`` no longer lists a ``cake`` root on the uplink (upload), or
  the uplink's ``ingress`` qdisc and a ``cake`` root on the ifb device (download).

One ``tc -j qdisc show`` per check. ``tc`` and ``ip`` need CAP_NET_ADMIN only (the
agent's); the kernel loads ``sch_cake``, ``ifb``, ``cls_matchall`` and ``act_mirred`` by
itself on first use. A failure is reported in the health document
(``network.uplink.fairness``) and logged once per change, and tried again at the next
check.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field
from typing import Any

from node.health.probes import Runner, json_rows, run_command
from node.net.render_shaping import IFB, cake_commands

log = logging.getLogger("meshhub.uplink")


@dataclass
class UplinkShaping:
    """Keeps CAKE on ``interface`` at the configured speeds (kbit/s; 0: that direction off)."""

    interface: str
    upload_kbit: int
    download_kbit: int
    runner: Runner = run_command
    #: One line for technicians: what is applied, or why not.
    state: str = field(init=False, default="not applied yet")
    _applied: bool = field(init=False, default=False)

    @property
    def enabled(self) -> bool:
        """Whether either direction is shaped."""
        return bool(self.upload_kbit or self.download_kbit)

    def ensure(self) -> str:
        """Apply what is missing (see the module docstring); return :attr:`state`."""
        if self._applied and not self.enabled:
            return self.state  # off, and what an earlier run left was removed
        qdiscs = self._qdiscs()
        if qdiscs is None:
            return self._set("failed: `tc qdisc show` did not answer")
        if not self._applied:
            self._remove_leftovers(qdiscs)
        elif not self._missing(qdiscs):
            return self.state
        for command in cake_commands(self.interface, self.upload_kbit, self.download_kbit):
            status, out, err = self.runner(command)
            if status != 0 and not (command[:3] == ("ip", "link", "add")
                                    and "exists" in err + out):
                self._applied = False
                return self._set(f"failed: `{shlex.join(command)}`: "
                                 f"{(err or out).strip() or f'exit {status}'}")
        self._applied = True
        if not self.enabled:
            return self._set("off: clients.uplink_upload_kbit and "
                             "clients.uplink_download_kbit are 0")
        parts = [f"{name} {kbit} kbit/s" for name, kbit in
                 (("upload", self.upload_kbit), ("download", self.download_kbit)) if kbit]
        return self._set("CAKE, fair per device: " + ", ".join(parts))

    def _set(self, state: str) -> str:
        if state != self.state:
            (log.warning if state.startswith("failed") else log.info)(
                "uplink %s fairness: %s", self.interface, state)
        self.state = state
        return state

    def _qdiscs(self) -> list[dict[str, Any]] | None:
        return json_rows(self.runner, ["tc", "-j", "qdisc", "show"])

    @staticmethod
    def _has(qdiscs: list[dict[str, Any]], dev: str, kind: str) -> bool:
        return any(q.get("dev") == dev and q.get("kind") == kind
                   and (kind == "ingress" or q.get("root")) for q in qdiscs)

    def _missing(self, qdiscs: list[dict[str, Any]]) -> bool:
        if self.upload_kbit and not self._has(qdiscs, self.interface, "cake"):
            return True
        return bool(self.download_kbit) and not (self._has(qdiscs, self.interface, "ingress")
                                                 and self._has(qdiscs, IFB, "cake"))

    def _remove_leftovers(self, qdiscs: list[dict[str, Any]]) -> None:
        """Undo what an earlier run shaped in a direction that is now off."""
        if not self.upload_kbit and self._has(qdiscs, self.interface, "cake"):
            self.runner(["tc", "qdisc", "del", "dev", self.interface, "root"])
        if not self.download_kbit and any(q.get("dev") == IFB for q in qdiscs):
            self.runner(["tc", "qdisc", "del", "dev", self.interface, "ingress"])
            self.runner(["ip", "link", "del", IFB])


def uplink_shaping(cfg: Any) -> UplinkShaping:
    """The keeper for this node's uplink (``clients.uplink_interface`` must be set)."""
    clients = cfg.clients
    return UplinkShaping(clients.uplink_interface, int(clients.uplink_upload_kbit),
                         int(clients.uplink_download_kbit))
