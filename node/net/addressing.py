"""The address plan: every address of a node derived in ONE place from ``node.toml``.

A node has

* a **mesh address** (a /32 on ``lo``, announced by babeld) inside ``mesh.mesh_range``,
  normally handed out by the community registry; when ``mesh.address`` is empty it is
  derived from a hash of ``node.name`` (fine for a lab or a lone node; two derived
  names can collide, so real meshes give every node its address);
* a **node number** ``n``: the mesh address's offset in ``mesh.mesh_range``;
* a **client subnet** for residents' devices: ``clients.subnet``, or else the ``n``-th
  /24 of ``clients.subnet_pool``, so that two nodes never hand out the same addresses;
* the **portal address**: the first host of the client subnet, on the access point.
  Phones get it as their router and DNS server, and the gate redirects to it.

Everything else (renderers, the gate, the CLI) asks :func:`address_plan`.
"""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address, IPv4Network

from node.config import NodeConfig
from node.errors import ConfigError
from node.frozen import frozen

#: Prefix of a derived client subnet (254 devices per node).
DERIVED_PREFIX = 24


@frozen
class AddressPlan:
    """The addresses of one node; see the module docstring for what each one is for."""

    node_number: int
    mesh_address: IPv4Address
    mesh_range: IPv4Network
    client_subnet: IPv4Network
    subnet_pool: IPv4Network
    portal_address: IPv4Address
    dhcp_first: IPv4Address
    dhcp_last: IPv4Address
    hub_names: tuple[str, ...]
    mesh_address_derived: bool
    client_subnet_derived: bool

    @property
    def portal_interface_address(self) -> str:
        """The access point's address with prefix, as ``ip addr add`` wants it."""
        return f"{self.portal_address}/{self.client_subnet.prefixlen}"

    @property
    def captive_api_url(self) -> str:
        """The RFC 8908 Captive Portal API URL announced by DHCP option 114."""
        return f"http://{self.portal_address}/api/captive"


def derived_node_number(name: str, slots: int) -> int:
    """A stable number in ``1..slots`` from the node's name (SHA-256, not Python's hash)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % slots


def address_problems(cfg: NodeConfig) -> list[str]:
    """Every problem of the address settings, each as ``key: reason``."""
    problems: list[str] = []
    try:
        address_plan(cfg)
    except ConfigError as exc:
        problems.extend(exc.problems)
    return problems


def address_plan(cfg: NodeConfig) -> AddressPlan:
    """The node's :class:`AddressPlan`; raises :class:`ConfigError` listing every problem."""
    mesh_range = IPv4Network(cfg.mesh.mesh_range)
    pool = IPv4Network(cfg.clients.subnet_pool)
    problems: list[str] = []
    if mesh_range.overlaps(pool):
        problems.append(f"clients.subnet_pool: {pool} overlaps mesh.mesh_range {mesh_range}; "
                        "residents' and nodes' addresses must come from separate ranges")
    if mesh_range.num_addresses < 4:
        problems.append(f"mesh.mesh_range: {mesh_range} is too small for a mesh")
        raise ConfigError(problems)

    pool_slots = pool.num_addresses >> (32 - DERIVED_PREFIX) if pool.prefixlen <= 24 else 0
    if cfg.mesh.address:
        mesh_address = IPv4Address(cfg.mesh.address)
        number = int(mesh_address) - int(mesh_range.network_address)
        if mesh_address not in mesh_range or mesh_address in (mesh_range.network_address,
                                                              mesh_range.broadcast_address):
            problems.append(f"mesh.address: {mesh_address} is outside mesh.mesh_range "
                            f"{mesh_range} (or is its network/broadcast address)")
    else:
        slots = mesh_range.num_addresses - 2
        if not cfg.clients.subnet and pool_slots > 1:
            slots = min(slots, pool_slots - 1)
        number = derived_node_number(cfg.node.name, max(slots, 1))
        mesh_address = mesh_range.network_address + number

    if cfg.clients.subnet:
        subnet = IPv4Network(cfg.clients.subnet)
        if not subnet.subnet_of(pool):
            problems.append(f"clients.subnet: {subnet} is outside clients.subnet_pool {pool}")
    elif 0 < number < pool_slots:
        step = 1 << (32 - DERIVED_PREFIX)
        subnet = IPv4Network((int(pool.network_address) + number * step, DERIVED_PREFIX))
    else:
        problems.append(f"clients.subnet: cannot derive a /{DERIVED_PREFIX} for node number "
                        f"{number} from clients.subnet_pool {pool} (it has {pool_slots}); "
                        "set clients.subnet explicitly")
        raise ConfigError(problems)
    if subnet.overlaps(mesh_range):
        problems.append(f"clients.subnet: {subnet} overlaps mesh.mesh_range {mesh_range}")
    if subnet.prefixlen > 29:
        problems.append(f"clients.subnet: {subnet} is too small; use /29 or larger")
        raise ConfigError(problems)

    start, end = cfg.clients.dhcp_range_start, cfg.clients.dhcp_range_end
    last_host = subnet.num_addresses - 2
    if not 2 <= start <= end <= last_host:
        problems.append(f"clients.dhcp_range_start/dhcp_range_end: {start}..{end} must satisfy "
                        f"2 <= start <= end <= {last_host} in {subnet} (offset 1 is the portal)")
    if problems:
        raise ConfigError(problems)
    domain = cfg.clients.domain
    names = (f"{cfg.clients.hub_name}.{domain}", f"{cfg.node.name}.{domain}")
    return AddressPlan(
        node_number=number,
        mesh_address=mesh_address,
        mesh_range=mesh_range,
        client_subnet=subnet,
        subnet_pool=pool,
        portal_address=subnet.network_address + 1,
        dhcp_first=subnet.network_address + start,
        dhcp_last=subnet.network_address + end,
        hub_names=tuple(dict.fromkeys(names)),
        mesh_address_derived=not cfg.mesh.address,
        client_subnet_derived=not cfg.clients.subnet,
    )

