"""Zeroconf (mDNS/DNS-SD) on the node's own links: announce this node, find its neighbours.

One :class:`zeroconf.Zeroconf` per node, bound only to the mesh links
(``mesh.interface`` and ``mesh.wired_interfaces``, over IPv6 link-local, since
mesh links carry no IPv4 address) and the residents' access point
(``wifi.ap_interface``, over IPv4). Never ``InterfaceChoice.All``: a node's
uplink or a laptop's Wi-Fi must not hear about the mesh.

It announces

* ``<node>._meshhub._tcp.local.`` — the agent API at the node's mesh address, with TXT
  ``name``, ``key`` (the node's public key), ``fp`` (its fingerprint), ``version``,
  ``role``;
* ``<node>._http._tcp.local.`` — the hub (the portal, at the access point's
  address), so residents' devices and laptops find it by name;

and browses ``_meshhub._tcp`` for other nodes' agents. mDNS reaches only the
nodes one link away; who else is on the mesh comes from babeld's routes
(:meth:`node.mesh.state.MeshState.node_addresses`). There is no central list.
"""

from __future__ import annotations

import logging
import socket
import threading
from ipaddress import IPv4Address
from typing import Any

from node.frozen import frozen

log = logging.getLogger("meshhub.mesh")

AGENT_SERVICE = "_meshhub._tcp.local."
HUB_SERVICE = "_http._tcp.local."
#: Tries to register one service when zeroconf's loop is too busy to answer in time.
REGISTER_ATTEMPTS = 3


@frozen
class Announcement:
    """What this node says about itself."""

    name: str
    mesh_address: str
    agent_port: int
    public_key: str
    fingerprint: str
    version: str
    role: str = "node"
    hub_address: str | None = None
    hub_port: int = 80

    def txt(self) -> dict[str, str]:
        """The TXT record of the agent service."""
        return {"name": self.name, "key": self.public_key, "fp": self.fingerprint,
                "version": self.version, "role": self.role}


@frozen
class FoundNode:
    """Another node's agent, as announced on one of our links."""

    name: str
    addresses: tuple[str, ...]
    port: int
    public_key: str
    fingerprint: str
    version: str
    role: str


def link_interfaces(mesh_links: list[str], client_links: list[str]) -> list[str | int]:
    """Zeroconf's ``interfaces=``: IPv6 indexes of mesh links, IPv4 addresses of client links.

    Interfaces that do not exist (yet) are left out; the result may be empty.
    """
    import netifaces

    chosen: list[str | int] = []
    present = set(netifaces.interfaces())
    for name in mesh_links:
        link_local = [a["addr"] for a in netifaces.ifaddresses(name).get(netifaces.AF_INET6, [])
                      if a.get("addr", "").startswith("fe80")] if name in present else []
        if link_local:
            chosen.append(socket.if_nametoindex(name))
    for name in client_links:
        if name in present:
            chosen += [a["addr"] for a in netifaces.ifaddresses(name).get(netifaces.AF_INET, [])
                       if "addr" in a]
    return chosen


class Discovery:
    """Announces this node and keeps :attr:`found` up to date; start/close from the agent."""

    def __init__(self, announcement: Announcement, interfaces: list[str | int]) -> None:
        self.announcement = announcement
        self.interfaces = interfaces
        self._zc: Any = None
        self._browser: Any = None
        self._found: dict[str, FoundNode] = {}
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """Whether zeroconf is up (it is not when no link exists)."""
        return self._zc is not None

    def start(self) -> None:
        """Bind to the links, register both services and start browsing (idempotent)."""
        if self._zc is not None:
            return
        if not self.interfaces:
            log.warning("zeroconf: none of the mesh or client links exists; not announcing")
            return
        from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, Zeroconf

        a = self.announcement
        host = f"{a.name}.local."
        before = set(threading.enumerate())
        self._zc = Zeroconf(interfaces=self.interfaces, ip_version=IPVersion.All)
        for thread in set(threading.enumerate()) - before:  # its event loop's thread
            thread.name = "meshhub-zeroconf"
        infos = [ServiceInfo(AGENT_SERVICE, f"{a.name}.{AGENT_SERVICE}",
                             addresses=[IPv4Address(a.mesh_address).packed], port=a.agent_port,
                             properties=a.txt(), server=host)]
        if a.hub_address:
            infos.append(ServiceInfo(HUB_SERVICE, f"{a.name}.{HUB_SERVICE}",
                                     addresses=[IPv4Address(a.hub_address).packed],
                                     port=a.hub_port, properties={"path": "/"}, server=host))
        for info in infos:
            self._register(info)
        self._browser = ServiceBrowser(self._zc, AGENT_SERVICE, handlers=[self._on_change])
        log.info("zeroconf: announcing %s on %d link(s)", a.name, len(self.interfaces))

    def _register(self, info: Any) -> None:
        """Register ``info``, trying again when zeroconf's loop answered too late: on a
        machine starting 200 lab nodes its ``EventLoopBlocked`` killed agents."""
        from zeroconf import EventLoopBlocked

        for attempt in range(1, REGISTER_ATTEMPTS + 1):
            try:
                self._zc.register_service(info, allow_name_change=True)
                return
            except EventLoopBlocked:
                if attempt == REGISTER_ATTEMPTS:
                    raise
                log.warning("zeroconf: registering %s took too long (a busy machine); "
                            "trying again (%d of %d)", info.name, attempt + 1,
                            REGISTER_ATTEMPTS)

    def close(self) -> None:
        """Withdraw the announcements and stop (idempotent)."""
        zc, self._zc = self._zc, None
        if zc is None:
            return
        if self._browser is not None:
            self._browser.cancel()
            self._browser = None
        zc.unregister_all_services()
        zc.close()

    def found(self) -> list[FoundNode]:
        """Other nodes' agents announced on our links now."""
        with self._lock:
            return sorted(self._found.values(), key=lambda f: f.name)

    def _on_change(self, zeroconf: Any, service_type: str, name: str,
                   state_change: Any) -> None:
        from zeroconf import ServiceStateChange

        if name == f"{self.announcement.name}.{AGENT_SERVICE}":
            return
        if state_change is ServiceStateChange.Removed:
            with self._lock:
                self._found.pop(name, None)
            return
        info = zeroconf.get_service_info(service_type, name, timeout=2000)
        if info is None:
            return
        txt = {k.decode(errors="replace"): (v or b"").decode(errors="replace")
               for k, v in info.properties.items()}
        node = FoundNode(txt.get("name", name.split(".")[0]),
                         tuple(info.parsed_addresses()), int(info.port or 0),
                         txt.get("key", ""), txt.get("fp", ""), txt.get("version", ""),
                         txt.get("role", ""))
        with self._lock:
            self._found[name] = node
