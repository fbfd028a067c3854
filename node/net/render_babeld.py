"""babeld's configuration: routing between nodes (Babel, RFC 8966).

The mesh radio is declared ``type wireless`` with the hello/update intervals and link
cost from ``[mesh]``; wired links between nodes ``type wired`` (babeld's guess stays
at metric 65535 on veth and some USB adapters). The node announces exactly two
prefixes: its mesh address (a /32 on ``lo``) and its client subnet; with an uplink
also a default route. Everything else is denied, so a mistake elsewhere on the node
never leaks into the mesh's routing. IPv4 routes use IPv6 link-local next hops
(v4-via-v6), so the radio needs no IPv4 address.
"""

from __future__ import annotations

from node.config import NodeConfig
from node.net._header import header
from node.net.addressing import AddressPlan

#: Where babeld answers ``dump``/``monitor`` for the mesh watcher (read-only socket).
MONITOR_PATH = "/run/meshhub/babeld.sock"


def render_babeld(cfg: NodeConfig, addresses: AddressPlan,
                  monitor_path: str = MONITOR_PATH) -> str:
    """The text of ``babeld.conf`` for this node."""
    mesh = cfg.mesh
    lines = [
        header(cfg, "babeld: routing between the mesh's nodes"),
        f"local-path {monitor_path}",
        "random-id true",
        "",
        "# The mesh radio and wired links to other nodes.",
        f"interface {mesh.interface} type wireless hello-interval {mesh.hello_interval:g} "
        f"update-interval {mesh.update_interval:g} rxcost {mesh.rxcost}",
    ]
    lines += [f"interface {name} type wired hello-interval {mesh.wired_hello_interval:g} "
              f"rxcost {mesh.wired_rxcost}" for name in mesh.wired_interfaces]
    lines += [
        "",
        "# Announce this node's mesh address and its residents' subnet, nothing else.",
        f"redistribute local ip {addresses.mesh_address}/32 allow",
        f"redistribute ip {addresses.client_subnet} eq {addresses.client_subnet.prefixlen} "
        "allow",
    ]
    if cfg.clients.uplink_interface:
        lines.append(f"redistribute if {cfg.clients.uplink_interface} ip 0.0.0.0/0 eq 0 allow")
    lines += ["redistribute local deny", "redistribute deny"]
    return "\n".join(lines) + "\n"
