"""The gate as a component of the agent: the socket, and the organisers' mode switch.

Started by :class:`node.agent.Agent` when ``gate.enabled`` is true (the agent runs as
root or with ``CAP_NET_ADMIN``). It serves the portal's requests
(:mod:`node.gate.server`) and watches the organisers' switch file
(:mod:`node.gate.mode`): when the mode in force changes, the gate's ruleset is
rendered again with that mode and applied with ``nft -f`` (one transaction; accepted
devices stay, except when switching to ``forced``, which empties the allow set).
"""

from __future__ import annotations

import dataclasses
import grp
import logging
import pwd
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.broadcast import StoreWatch, current_broadcast
from node.config import NodeConfig
from node.gate import garp
from node.gate.broadcast import BroadcastGate
from node.gate.manager import GateManager, Runner, run_command
from node.gate.mode import effective_mode, mode_file, with_mode
from node.gate.protocol import GateError, GateStatus, LeaseStatus, Request
from node.gate.server import GateServer
from node.logs import OnceLogger

if TYPE_CHECKING:
    from node.scheduler import Scheduler

log = logging.getLogger("meshhub.gate")

#: Seconds between two looks at the organisers' switch file.
MODE_POLL_SECONDS = 2.0
#: Seconds between two cheap looks for a change of the content store (a new emergency
#: broadcast arriving by replication): ``PRAGMA data_version``, see node.broadcast.StoreWatch.
BROADCAST_POLL_SECONDS = 0.25
#: After the store's files change, the gate looks again this much later (one look per
#: burst): a commit becomes readable only once SQLite has written and synced all of it.
STORE_SETTLE_SECONDS = 1.0


def portal_identity(user: str) -> tuple[set[int], int | None]:
    """The uids allowed besides root (the portal user's) and the socket's group."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        log.error("gate: gate.portal_user %r does not exist; only root may use the socket", user)
        return set(), None
    return {entry.pw_uid}, entry.pw_gid


class GateService:
    """The gate's socket server and mode watcher (an agent component: start/poll/stop)."""

    name = "gate"

    def __init__(self, cfg: NodeConfig, *, runner: Runner = run_command,
                 poll_seconds: float = MODE_POLL_SECONDS, roam: Any = None,
                 scheduler: Scheduler | None = None,
                 announce: Callable[[str, str], bool] | None = None) -> None:
        self.cfg = cfg
        #: Sends the portal's gratuitous ARP after a bind (node.gate.garp; tests replace it).
        self._announce = announce or garp.announce
        #: Accept once, roam everywhere (:class:`node.roam.RoamService`), when roam.enabled.
        self.roam = roam
        self._run = runner
        self.manager = GateManager.from_config(cfg, mode=effective_mode(cfg), runner=runner)
        #: The emergency broadcast in force, held in the gate's sets (node.gate.broadcast).
        self.broadcast = BroadcastGate(self.manager)
        uids, gid = portal_identity(str(cfg.gate.portal_user))
        group = cfg.gate.socket_group
        if group:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                log.error("gate: gate.socket_group %r does not exist", group)
        self.server = GateServer(Path(cfg.gate.socket), self.handle, allowed_uids=uids, group=gid)
        self._poll_seconds = poll_seconds
        #: The agent's scheduler: the switch's folder is watched there (no thread of ours).
        self._scheduler = scheduler
        self._watching = False
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._problems = OnceLogger(log)
        #: The store's path, worked out once: ``cfg.data_dir`` resolves the folder (a
        #: system call for each part of it), and the gate looks at the store at each
        #: commit, twice (docs/scale.md, session 12).
        self._database_path: Path | None = None

    def handle(self, request: Request) -> GateStatus | LeaseStatus:
        """Answer one request of the portal (or of dnsmasq's lease hook)."""
        answer = self._handle(request)
        if not isinstance(answer, GateStatus):
            return answer
        held, read = self.broadcast.seen_by(answer.ip, answer.mac)
        if held is None:
            return answer
        return dataclasses.replace(answer, broadcast=held.notice, broadcast_read=read)

    def _handle(self, request: Request) -> GateStatus | LeaseStatus:
        if request.op == "lease" and request.mac and request.seconds:
            lease = self.manager.bind(request.ip, request.mac, request.seconds)
            self.roamed_in(request.ip, request.mac)  # at its lease, before its first probe
            self._announce_portal()
            return lease
        if request.op == "release" and request.mac:
            return self.manager.unbind(request.ip, request.mac)
        if request.op == "allow":
            if self.manager.mode == "open":
                return self.manager.status(request.ip)
            status = self.manager.allow(request.ip)
            log.info("gate: %s (%s) accepted for %ss", status.ip, status.mac,
                     status.seconds_remaining)
            if self.roam is not None and status.mac and status.seconds_remaining:
                self.roam.accepted(status.mac, status.seconds_remaining)
            return status
        if request.op == "remove":
            return self.manager.remove(request.ip)
        if request.op == "read":
            status = self.manager.status(request.ip)
            if status.mac is None:
                raise GateError("unknown-device", f"no device with address {request.ip} is "
                                "known on this node's access point")
            self.broadcast.mark_read(status.ip, status.mac)
            return status
        status = self.manager.status(request.ip)
        if not status.allowed and status.mac and self.roamed_in(request.ip, status.mac):
            status = self.manager.status(request.ip)
        return status

    def _announce_portal(self) -> None:
        """Tell a phone still asking for its router where the portal is, now that its
        address is bound (its first ARP request was dropped: :mod:`node.gate.garp`)."""
        from node.net.addressing import address_plan

        try:
            self._announce(self.cfg.wifi.ap_interface,
                           str(address_plan(self.cfg).portal_address))
            self._problems.resolved("garp")
        except (OSError, ValueError) as exc:  # the phone asks again a second later
            self._problems.warning("garp", "gate: cannot announce the portal's address on "
                                   "%s: %s", self.cfg.wifi.ap_interface, exc)

    def roamed_in(self, ip: str, mac: str) -> bool:
        """Let ``ip`` with ``mac`` through if another node of the mesh accepted that device
        (roaming), until its acceptance there ends; whether it was let through. Nothing
        about the device is logged."""
        if self.roam is None or self.manager.mode != "portal":  # forced: everyone accepts here
            return False
        until = self.roam.until(mac)
        remaining = int(until - time.time()) if until is not None else 0
        if remaining < 1:
            return False
        self.manager.allow(ip, mac, seconds=remaining)
        return True

    def apply_mode(self, mode: str) -> None:
        """Render the gate with ``mode`` and apply it in one ``nft -f`` transaction.

        The mode in force is the organisers' switch, else ``gate.mode``
        (:func:`~node.gate.mode.effective_mode`): :meth:`check_mode` puts it back over any
        other. To change it, write the switch (:func:`~node.gate.mode.write_switch`).
        """
        from node.net import build_plan

        text = build_plan(with_mode(self.cfg, mode)).file("gate.nft").content
        code, out, err = self._run(["nft", "-f", "-"], text)
        if code != 0:
            raise GateError("gate-failed", f"nft -f failed ({code}): {err.strip() or out}")
        previous, self.manager.mode = self.manager.mode, mode
        log.warning("gate: mode is now %r", mode)
        if mode == "forced" and previous != "forced" and self.roam is not None:
            self.roam.forget_everywhere()  # acceptances made anywhere before end now

    def check_mode(self) -> None:
        """Apply the mode in force if it differs from the one applied (called by the watcher)."""
        wanted = effective_mode(self.cfg)
        if wanted == self.manager.mode:
            return
        try:
            self.apply_mode(wanted)
            self._problems.resolved("mode")
        except Exception as exc:  # keep serving with the old mode; retry next time
            self._problems.warning("mode", "gate: cannot switch to %r: %s", wanted, exc)

    def start(self) -> None:
        """Open the socket and start watching the switch (idempotent)."""
        if self._watcher is not None or self._watching:
            return
        self.reload_leases()
        self.server.start()
        self._stop.clear()
        if self._scheduler is not None:
            switch = mode_file(self.cfg)
            self._scheduler.watch(switch.parent, lambda _names: self._check_running(),
                                  "gate-mode", names={switch.name},
                                  poll_seconds=self._poll_seconds)
            # An emergency broadcast arrives as a commit to the store (replication, the
            # portal, the CLI): its files change, and the gate looks at once.
            database = self._database()
            self.check_broadcast()
            self._scheduler.watch(database.parent, lambda _names: self._store_changed(),
                                  "gate-broadcast",
                                  names={database.name, f"{database.name}-wal"},
                                  poll_seconds=self._poll_seconds)
            self._watching = True
            return
        self._watcher = threading.Thread(target=self._watch, name="meshhub-gate-mode")
        self._watcher.start()

    def reload_leases(self) -> None:
        """Bind every current lease of dnsmasq's lease file (after a reboot or re-apply).

        dnsmasq reports each lease again when it starts; this covers a gate that
        starts, or whose sets were re-created, while dnsmasq keeps running.
        """
        from node.gate.leases import read_lease_file

        try:
            current = read_lease_file(self.cfg.data_dir / "dnsmasq.leases")
            if current:
                self.manager.bind_many(current)
            self._problems.resolved("leases")
        except (OSError, GateError) as exc:
            self._problems.warning("leases", "gate: cannot load dnsmasq's leases: %s", exc)

    def poll(self) -> str:
        """``up`` while the socket is served."""
        if self._watching:
            alive = self._scheduler is not None and self._scheduler.is_alive()
            return "up" if alive and self.server.serving() else "down"
        return "up" if self._watcher is not None and self._watcher.is_alive() else "down"

    def stop(self) -> None:
        """Close the socket and stop watching (idempotent)."""
        self._stop.set()
        self._watching = False  # the scheduler's next call finds it stopped
        if self._watcher is not None:
            self._watcher.join(timeout=10)
            self._watcher = None
        self.server.stop()

    def _check_running(self) -> None:
        if not self._stop.is_set():
            self.check_mode()

    def _store_changed(self) -> None:
        self._check_broadcast_running()
        # SQLite writes a commit's pages to the WAL (each write an event here) and makes
        # it readable only after its last write and fsync: the look above may come too
        # soon and no event follows. Look once more when the writes have settled.
        if self._scheduler is not None:
            self._scheduler.once(STORE_SETTLE_SECONDS, self._check_broadcast_running,
                                 "gate-broadcast-settled")

    def _check_broadcast_running(self) -> None:
        if not self._stop.is_set():
            self.check_broadcast()

    def _database(self) -> Path:
        if self._database_path is None:
            from node.sync.setup import DATABASE  # the node's content store

            self._database_path = self.cfg.data_dir / DATABASE
        return self._database_path

    def check_broadcast(self) -> None:
        """Hold the emergency broadcast the store has in force (called when the store
        changed: the scheduler's watch of its files, or the watcher).

        The store is the node's content database, where replication brings a broadcast
        sent anywhere on the mesh; a failure is logged once and tried again next time.
        """
        try:
            found = current_broadcast(self._database(), time.time())
            self.broadcast.enforce(found)
            self._problems.resolved("broadcast")
        except Exception as exc:
            self._problems.warning("broadcast", "gate: cannot apply the emergency broadcast: "
                                   "%s", exc)

    def _watch(self) -> None:
        """Without the agent's scheduler (a gate on its own, tests): the switch file every
        ``poll_seconds``, and the store for a broadcast whenever it changed (looked at
        every :data:`BROADCAST_POLL_SECONDS`, cheaply: node.broadcast.StoreWatch)."""
        store = StoreWatch(self._database())
        next_mode = time.monotonic() + self._poll_seconds
        try:
            while True:
                due = time.monotonic() >= next_mode
                if due:
                    self.check_mode()
                    next_mode = time.monotonic() + self._poll_seconds
                if store.changed() or due:
                    self.check_broadcast()
                if self._stop.wait(min(self._poll_seconds, BROADCAST_POLL_SECONDS)):
                    break
        finally:
            store.close()
