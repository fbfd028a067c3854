"""The captive gate: one nftables ``inet`` table, applied atomically with ``nft -f``.

Before a resident accepts the house rules, their device may reach only the node's
DHCP, DNS and portal; its port-80 traffic to anywhere is redirected to the portal;
everything else is dropped and counted. Accepting adds ``address . MAC`` to the set
``allowed`` with a timeout; when it runs out the element disappears and the next
probe is redirected again. Always, for everyone on the access point:

* DNS only to the node's resolver: udp/tcp 53 and 853 (DoT, DoQ) elsewhere dropped;
* no IPv6 at all (not offered by dnsmasq, dropped here);
* no traffic between residents' devices, on this node or on any other node;
* never the management ports (of this node or of other nodes on the mesh);
* nothing from outside may open a connection to a resident's device.

The file starts with ``table``/``flush table``: re-applying replaces every rule in
one transaction but keeps the elements of ``allowed`` (accepted phones stay
accepted). Changing the set's own definition (its type or flags) needs
``delete table`` first.
"""

from __future__ import annotations

from node.config import NodeConfig
from node.net._header import header
from node.net.addressing import AddressPlan

TABLE = "meshhub"
SET = "allowed"

#: Named counters (``nft list counters table inet meshhub``), read by health checks.
COUNTERS = (
    ("portal_redirected", "port-80 connections of unaccepted devices sent to the portal"),
    ("unaccepted_dropped", "packets of unaccepted devices towards anywhere else"),
    ("outside_dns_dropped", "DNS/DoT/DoQ to resolvers other than the node's"),
    ("client_to_client_dropped", "packets between residents' devices"),
    ("management_dropped", "packets to management ports"),
    ("ipv6_dropped", "IPv6 packets from residents' devices"),
    ("node_port_dropped", "packets to other ports of the node itself"),
    ("forward_dropped", "accepted devices' packets with nowhere allowed to go"),
    ("inbound_dropped", "new connections from outside towards residents' devices"),
)



def _ports(ports: list[int] | tuple[int, ...]) -> str:
    unique = sorted(set(ports))
    return str(unique[0]) if len(unique) == 1 else "{ " + ", ".join(map(str, unique)) + " }"


def render_nftables(cfg: NodeConfig, addresses: AddressPlan) -> str:
    """The text of the gate's ruleset file (``nft -f FILE``).

    ``gate.mode`` (see :mod:`node.gate.mode`): ``open`` leaves out the two rules that
    hold unaccepted devices back (the port-80 redirect and the drop); ``forced``
    ends the file with ``flush set``, so nobody accepted earlier is remembered.
    """
    mode = cfg.gate.mode
    ap = f'"{cfg.wifi.ap_interface}"'
    uplink = cfg.clients.uplink_interface
    portal = addresses.portal_address
    port = cfg.gate.portal_port
    # The agent's API (health, sync, update mirror) is for nodes and technicians, never
    # for residents' devices: it is always a management port.
    mgmt = _ports(sorted({*cfg.gate.management_ports, cfg.agent.port}))
    hub_ports = _ports((80, port))
    unaccepted = f"ip saddr . ether saddr != @{SET}"
    counters = "\n".join(f"\tcounter {name} {{ comment \"{text}\"; }}" for name, text in COUNTERS)

    nat = []
    if port != 80:
        nat.append(f"\t\tiifname {ap} ip daddr {portal} tcp dport 80 redirect to :{port}")
    if mode != "open":
        nat.append(f'\t\tiifname {ap} tcp dport 80 {unaccepted} counter name '
                   f'"portal_redirected" redirect to :{port}')
    hold_back = "" if mode == "open" else (
        f'\t\t{unaccepted} counter name "unaccepted_dropped" drop\n')
    mesh_mgmt = (f'\t\tip daddr {addresses.mesh_range} tcp dport {mgmt} counter name '
                 f'"management_dropped" drop')
    # This node's own hub at its mesh address, as every other node's is reachable
    # (the same ports, after acceptance): a link copied from another node works here too.
    accepted = "" if mode == "open" else f"ip saddr . ether saddr @{SET} "
    own_hub = (f"\t\tip daddr {addresses.mesh_address} tcp dport {hub_ports} {accepted}accept\n"
               f"\t\tip daddr {addresses.mesh_address} icmp type echo-request {accepted}"
               "limit rate 10/second accept")
    forced = f"\n# gate.mode = forced: nobody is remembered.\nflush set inet {TABLE} {SET}\n" \
        if mode == "forced" else ""

    forward_out = []
    if uplink:
        forward_out.append(f'\t\toifname "{uplink}" accept')
    postrouting = ""
    if uplink:
        postrouting = (
            "\n\tchain postrouting_nat {\n"
            "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
            f'\t\toifname "{uplink}" ip saddr {addresses.client_subnet} masquerade\n'
            "\t}\n")

    return f"""#!/usr/sbin/nft -f
{header(cfg, "nftables: the captive gate for residents' devices")}
table inet {TABLE}
flush table inet {TABLE}

table inet {TABLE} {{
\t# Accepted devices: address bound to MAC, expiring after gate.allow_minutes.
\tset {SET} {{
\t\ttype ipv4_addr . ether_addr
\t\tflags timeout
\t\ttimeout {cfg.gate.allow_minutes}m
\t}}

{counters}

\tchain prerouting_nat {{
\t\ttype nat hook prerouting priority dstnat; policy accept;
{chr(10).join(nat)}
\t}}

\t# The node itself, as seen from the access point.
\tchain input {{
\t\ttype filter hook input priority filter; policy accept;
\t\tiifname != {ap} accept
\t\tmeta nfproto ipv6 counter name "ipv6_dropped" drop
\t\tct state established,related accept
\t\tudp dport 67 accept
\t\tip daddr {portal} meta l4proto {{ tcp, udp }} th dport 53 accept
\t\ttcp dport {mgmt} counter name "management_dropped" drop
\t\tip daddr {portal} tcp dport {port} accept
\t\tip daddr {portal} icmp type echo-request limit rate 10/second accept
{own_hub}
\t\tcounter name "node_port_dropped" drop
\t}}

\tchain forward {{
\t\ttype filter hook forward priority filter; policy accept;
\t\tiifname {ap} jump from_clients
\t\toifname {ap} jump to_clients
\t}}

\tchain from_clients {{
\t\tmeta nfproto ipv6 counter name "ipv6_dropped" drop
\t\tmeta l4proto {{ tcp, udp }} th dport {{ 53, 853 }} counter name "outside_dns_dropped" drop
\t\toifname {ap} counter name "client_to_client_dropped" drop
\t\tip daddr {addresses.subnet_pool} counter name "client_to_client_dropped" drop
{hold_back}{mesh_mgmt}
\t\tip daddr {addresses.mesh_range} tcp dport {hub_ports} accept
\t\tip daddr {addresses.mesh_range} icmp type echo-request accept
{chr(10).join(forward_out) + chr(10) if forward_out else ""}\t\tcounter name "forward_dropped" drop
\t}}

\tchain to_clients {{
\t\tct state established,related accept
\t\tcounter name "inbound_dropped" drop
\t}}
{postrouting}}}
{forced}"""
