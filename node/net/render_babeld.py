"""babeld's configuration: routing between nodes (Babel, RFC 8966).

The mesh radio is declared ``type wireless`` with the hello/update intervals and link
cost from ``[mesh]``; wired links between nodes ``type wired`` (babeld's guess stays
at metric 65535 on veth and some USB adapters). The node announces exactly two
prefixes: its mesh address (a /32 on ``lo``) and its client subnet; with an uplink
also a default route, but only while the agent's check finds the uplink working: the
agent then keeps an announcement route of protocol 201 in the kernel, and babeld
redistributes exactly that (:mod:`node.mesh.uplink`). Everything else is denied, so a
mistake elsewhere on the node never leaks into the mesh's routing. IPv4 routes use IPv6
link-local next hops (v4-via-v6), so the radio needs no IPv4 address.
"""

from __future__ import annotations

from node.config import NodeConfig
from node.net._header import header
from node.net.addressing import AddressPlan

#: The kernel protocol of the agent's announcement route (node.mesh.uplink.ANNOUNCE_PROTO;
#: kept here too so that rendering imports nothing of the agent's).
UPLINK_ANNOUNCE_PROTO = 201

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
        # babeld's default (4 s) took 20-24 s to prefer a gateway whose uplink came back
        # after it had retracted its route (docs/uplink.md, "Failing back").
        f"smoothing-half-life {mesh.smoothing_half_life}",
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
        lines += [f"# The internet, through {cfg.clients.uplink_interface}, while it works "
                  "(the agent's announcement route).",
                  f"redistribute proto {UPLINK_ANNOUNCE_PROTO} ip 0.0.0.0/0 eq 0 "
                  + (f"metric {cfg.clients.uplink_cost}" if cfg.clients.uplink_cost
                     else "allow")]
    lines += ["redistribute local deny", "redistribute deny"]
    return "\n".join(lines) + "\n"
