"""The agent's mesh part: babeld supervised, its monitoring followed, zeroconf on the links.

:class:`MeshService` is what the agent holds as ``agent.mesh``. Each piece runs
only when ``node.toml`` asks for it (``mesh.routing``, ``mesh.discovery``); with
both off (a laptop, a demo) it does nothing and reports no mesh data.

:meth:`MeshService.peers` is the list of neighbours' agent URLs the sync service
talks to: babeld's live neighbours, each mapped to the mesh address it announces
(and to the port it announces over zeroconf, when it does).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from node.config import NodeConfig
from node.mesh.babel_monitor import BabelMonitor
from node.mesh.babeld import babeld_files, babeld_process
from node.mesh.discovery import Announcement, Discovery, link_interfaces
from node.mesh.state import MeshState
from node.mesh.supervisor import SupervisedProcess

log = logging.getLogger("meshhub.mesh")
Json = dict[str, Any]


class MeshService:
    """Routing (babeld), its monitor and discovery for one node."""

    def __init__(self, cfg: NodeConfig, *, babeld: str = "babeld") -> None:
        from node.net.addressing import address_plan

        self.cfg = cfg
        self.addresses = (address_plan(cfg) if cfg.mesh.routing or cfg.mesh.discovery
                          else None)
        self.state = MeshState(cfg.mesh.mesh_range)
        self.routing = bool(cfg.mesh.routing)
        self.babeld: SupervisedProcess | None = None
        self.monitor: BabelMonitor | None = None
        self.discovery: Discovery | None = None
        self._listeners: list[Callable[[], None]] = []
        self._known_peers: tuple[str, ...] = ()
        if self.routing:
            self.babeld = babeld_process(cfg, babeld)
            self.monitor = BabelMonitor(str(babeld_files(cfg).socket), self.state,
                                        on_change=self._changed)

    @property
    def supervised(self) -> list[SupervisedProcess]:
        """The daemons for the agent's ``supervised`` list (babeld when routing is on)."""
        return [self.babeld] if self.babeld is not None else []

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (cheaply, from the monitor thread) when the peers change."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Start following babeld and announcing (the agent starts babeld itself)."""
        if self.monitor is not None:
            self.monitor.start()
        if self.cfg.mesh.discovery:
            self.discovery = Discovery(self._announcement(), self._links())
            try:
                self.discovery.start()
            except Exception as exc:  # a link that vanished; a loop too busy to answer
                # The node still routes and syncs with babeld's neighbours: not fatal.
                log.error("zeroconf could not start, not announcing: %s: %s",
                          type(exc).__name__, exc)
                with contextlib.suppress(Exception):
                    self.discovery.close()
                self.discovery = None

    def stop(self) -> None:
        """Stop announcing and following (idempotent)."""
        if self.discovery is not None:
            self.discovery.close()
            self.discovery = None
        if self.monitor is not None:
            self.monitor.stop()

    # --- what others read ------------------------------------------------------

    def peers(self) -> list[str]:
        """Base URLs of the neighbours' agents, e.g. ``http://10.42.0.7:9180``.

        Each live babeld neighbour's mesh address with the mesh's agent port, plus
        any other port a zeroconf announcement names for that address. An
        announcement adds a URL and never replaces one: anyone can announce
        anything, so a box naming a node's address with another port cannot take
        the node's place; which node answers at each URL is checked on every
        answer (``Meshhub-Reply``, :class:`node.agent_client.NodeKeys`).
        """
        addresses = set(self.state.neighbour_addresses().values())
        default = self.cfg.agent.port
        urls = {f"http://{address}:{default}" for address in addresses}
        if self.discovery is not None:
            for node in self.discovery.found():
                for address in node.addresses:
                    if address in addresses and 0 < node.port < 65536:
                        urls.add(f"http://{address}:{node.port}")
        return sorted(urls)

    def nodes(self) -> list[str]:
        """Mesh addresses of every node reachable now (babeld's routes)."""
        return self.state.node_addresses()

    def health(self) -> Json | None:
        """The health document's ``mesh`` part (``None`` when routing is off or unread)."""
        if not self.routing:
            return None
        doc = self.state.health()
        if doc is not None:
            doc["babeld"] = self.babeld.poll() if self.babeld is not None else "unknown"
            doc["peers"] = self.peers()
            if self.discovery is not None:
                doc["announced_by_neighbours"] = [f.name for f in self.discovery.found()]
        return doc

    # --- internals -------------------------------------------------------------

    def _changed(self) -> None:
        peers = tuple(self.peers())
        if peers != self._known_peers:
            self._known_peers = peers
            log.info("mesh neighbours now: %s", ", ".join(peers) or "none")
            for listener in list(self._listeners):
                listener()

    def _links(self) -> list[str | int]:
        mesh = self.cfg.mesh
        return link_interfaces([mesh.interface, *mesh.wired_interfaces],
                               [self.cfg.wifi.ap_interface])

    def _announcement(self) -> Announcement:
        from node.health.collector import software_version
        from node.identity import load_or_create_identity

        identity = load_or_create_identity(self.cfg.data_dir)
        assert self.addresses is not None
        return Announcement(name=self.cfg.node.name,
                            mesh_address=str(self.addresses.mesh_address),
                            agent_port=self.cfg.agent.port, public_key=identity.public_key,
                            fingerprint=identity.fingerprint, version=software_version(),
                            hub_address=str(self.addresses.portal_address),
                            hub_port=self.cfg.gate.portal_port)
