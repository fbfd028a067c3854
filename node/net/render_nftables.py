"""The captive gate: one nftables ``inet`` table, applied atomically with ``nft -f``.

Before a resident accepts the house rules, their device may reach only the node's
DHCP, DNS and portal; its port-80 traffic to anywhere is redirected to the portal;
everything else is dropped and counted. Accepting adds ``address . MAC`` to the set
``allowed`` with a timeout; when it runs out the element disappears and the next
probe is redirected again. Always, for everyone on the access point:

* DNS only to the node's resolver: udp/tcp 53 and 853 (DoT, DoQ) elsewhere dropped;
  on a node that forwards DNS (an uplink, or ``clients.dns_servers``), port 53 of a
  device not in ``allowed`` is redirected to the
  walled resolver (:data:`~node.net.render_dnsmasq.WALLED_DNS_PORT`), which forwards
  nothing: no name leaves the node before acceptance (no DNS tunnel);
* no IPv6 at all (not offered by dnsmasq, dropped here);
* no traffic between residents' devices, on this node or on any other node;
* after acceptance, the internet: through this node's uplink, or over a mesh link along
  babeld's default route to a node whose uplink works (:mod:`node.mesh.uplink`); a
  gateway masquerades the residents of every node behind its uplink's address;
* never the management ports (of this node or of other nodes on the mesh);
* nothing from outside may open a connection to a resident's device;
* an address belongs to the device dnsmasq leased it to: ARP and IPv4 from the access
  point whose sender address and MAC are not a lease in set ``leased`` are dropped
  (table ``arp meshhub_arp`` for ARP), so no device can take over another's address
  in the node's neighbour table; the set is fed by dnsmasq's lease events through the
  gate (:mod:`node.gate.leases`), so these drops are rendered only when the gate's
  control runs (``gate.enabled``);
* DHCP is rate-limited per MAC (set ``dhcp_rate``), so one device cannot empty the pool;
* one address may hold at most :data:`HUB_CONNECTIONS_PER_ADDRESS` connections to the
  hub's ports at once (set ``hub_clients``), from the access point or the mesh, so one
  device cannot tie up every connection of the portal (slowloris);
* during an emergency broadcast (the access point's name in set ``broadcast``, whatever
  the mode), a device not in ``notice_read`` is held back exactly like an unaccepted one
  (:mod:`node.gate.broadcast`): its probes reach the portal, which shows the notice.

The file starts with ``table``/``flush table``: re-applying replaces every rule in
one transaction but keeps the elements of ``allowed`` (accepted phones stay
accepted). Changing the set's own definition (its type or flags) needs
``delete table`` first.
"""

from __future__ import annotations

from node.config import NodeConfig
from node.net._header import header
from node.net.addressing import AddressPlan
from node.net.render_dnsmasq import WALLED_DNS_PORT, forwards_dns

TABLE = "meshhub"
SET = "allowed"
#: The ``arp`` family table that keeps ARP honest (same name in both tables: ``leased``).
ARP_TABLE = "meshhub_arp"
LEASED_SET = "leased"
#: DHCP packets a MAC may send per minute (and in a burst) before the rest are dropped:
#: a phone needs two to join, and two more at each renewal.
DHCP_PER_MAC_PER_MINUTE = 10
#: nginx's HTTPS port (organisers' pages), reachable like the portal's own.
HTTPS_PORT = 443
#: Connections one address may hold open to the hub's ports (a browser opens about 6
#: per site); the portal (waitress) serves up to 200 at once.
HUB_CONNECTIONS_PER_ADDRESS = 16
#: The emergency broadcast's sets (:mod:`node.gate.broadcast`).
BROADCAST_SET = "broadcast"
READ_SET = "notice_read"

#: Named counters (``nft list counters table inet meshhub``), read by health checks.
COUNTERS = (
    ("portal_redirected", "port-80 connections of unaccepted devices sent to the portal"),
    ("dns_walled", "DNS of unaccepted devices sent to the walled resolver (uplink nodes)"),
    ("unaccepted_dropped", "packets of unaccepted devices towards anywhere else"),
    ("outside_dns_dropped", "DNS/DoT/DoQ to resolvers other than the node's"),
    ("client_to_client_dropped", "packets between residents' devices"),
    ("management_dropped", "packets to management ports"),
    ("ipv6_dropped", "IPv6 packets from residents' devices"),
    ("node_port_dropped", "packets to other ports of the node itself"),
    ("forward_dropped", "accepted devices' packets with nowhere allowed to go"),
    ("inbound_dropped", "new connections from outside towards residents' devices"),
    ("spoofed_dropped", "IPv4 packets whose address and MAC are not a lease"),
    ("dhcp_limited", "DHCP packets over the per-MAC rate"),
    ("hub_conn_limited", "connections to the hub over the per-address limit"),
    ("broadcast_redirected", "port-80 connections sent to the emergency notice"),
    ("broadcast_held", "packets of devices that have not read the emergency notice"),
)



#: The per-device cap's counter (rendered only with a cap set).
DEVICE_CAP_COUNTER = ("device_cap_dropped",
                      "packets over a device's cap (clients.device_download/upload_kbit)")


def device_cap(kbit: int, direction: str, mesh_range: str) -> str:
    """The rule that drops what one address receives (``direction`` ``down``) or sends
    (``up``) from or to outside ``mesh_range`` beyond ``kbit`` kbit/s; nothing when 0.

    A policer per address (a dynamic set of ``limit`` meters, forgotten a minute after
    the device's last packet): TCP slows to the cap as it does at any loss. Its burst is
    a quarter of a second of the cap (at least 16 KiB), so that a download's window
    fits and the cap is reached. Traffic within the mesh (the hub, other nodes) is never
    capped."""
    if not kbit:
        return ""
    rate = kbit * 1000 // 8
    burst = max(rate // 4, 16384)
    outside, device = ("ip saddr", "ip daddr") if direction == "down" else ("ip daddr", "ip saddr")
    return (f"\t\t{outside} != {mesh_range} update @device_{direction} {{ {device} limit rate "
            f"over {rate} bytes/second burst {burst} bytes }} counter name "
            f"\"{DEVICE_CAP_COUNTER[0]}\" drop\n")


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
    walled = forwards_dns(cfg)  # names may leave the node: the walled resolver for strangers
    portal = addresses.portal_address
    port = cfg.gate.portal_port
    # The agent's API (health, sync, update mirror) is for nodes and technicians, never
    # for residents' devices: it is always a management port.
    mgmt = _ports(sorted({*cfg.gate.management_ports, cfg.agent.port}))
    # The hub: port 80 (nginx, or the redirect), the portal's port, and HTTPS (443:
    # nginx with the node's certificate, for organisers' pages; node/tls.py).
    hub_ports = _ports((80, HTTPS_PORT, port))
    portal_ports = _ports((port, HTTPS_PORT))
    unaccepted = f"ip saddr . ether saddr != @{SET}"
    # An emergency broadcast in force (set "broadcast" holds the AP's name until its end).
    unread = f"iifname @{BROADCAST_SET} ip saddr . ether saddr != @{READ_SET}"
    down, up = cfg.clients.device_download_kbit, cfg.clients.device_upload_kbit
    capped = ((DEVICE_CAP_COUNTER,) if down or up else ())
    counters = "\n".join(f"\tcounter {name} {{ comment \"{text}\"; }}"
                         for name, text in (*COUNTERS, *capped))
    cap_sets = "".join(
        f"\t# What each device received / sent beyond its cap (one meter per address).\n"
        f"\tset device_{direction} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n"
        "\t\ttimeout 1m\n\t\tsize 65535\n\t}\n\n"
        for direction, kbit in (("down", down), ("up", up)) if kbit)
    cap_down = device_cap(down, "down", str(addresses.mesh_range))
    cap_up = device_cap(up, "up", str(addresses.mesh_range))

    nat = []
    if port != 80:
        nat.append(f"\t\tiifname {ap} ip daddr {portal} tcp dport 80 redirect to :{port}")
    nat.append(f'\t\t{unread} tcp dport 80 counter name "broadcast_redirected" '
               f"redirect to :{port}")
    if mode != "open":
        nat.append(f'\t\tiifname {ap} tcp dport 80 {unaccepted} counter name '
                   f'"portal_redirected" redirect to :{port}')
    if walled:
        nat.append(f"\t\t{unread} ip daddr {portal} meta l4proto {{ tcp, udp }} th dport 53 "
                   f'counter name "dns_walled" redirect to :{WALLED_DNS_PORT}')
    if mode != "open" and walled:
        # Before acceptance no name may leave the node: the walled resolver answers.
        nat.append(f"\t\tiifname {ap} ip daddr {portal} meta l4proto {{ tcp, udp }} th dport 53 "
                   f'{unaccepted} counter name "dns_walled" redirect to :{WALLED_DNS_PORT}')
    dns_ports = _ports((53, WALLED_DNS_PORT) if walled else (53,))
    hold_back = "" if mode == "open" else (
        f'\t\t{unaccepted} counter name "unaccepted_dropped" drop\n')
    hold_back += f'\t\t{unread} counter name "broadcast_held" drop\n'
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
    # The internet through another node's uplink: babeld's default route leads over a
    # mesh link to a gateway (node.mesh.uplink); nothing of the mesh itself is reached so.
    links = ", ".join(f'"{name}"' for name in (cfg.mesh.interface, *cfg.mesh.wired_interfaces))
    forward_out.append(f"\t\tip daddr != {addresses.mesh_range} oifname {{ {links} }} accept")
    forward_rules = "".join(f"{rule}\n" for rule in forward_out)
    postrouting = ""
    if uplink:
        # Residents of every node (and the nodes themselves) leave with the uplink's address.
        postrouting = (
            "\n\tchain postrouting_nat {\n"
            "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
            f'\t\toifname "{uplink}" ip saddr {{ {addresses.subnet_pool}, '
            f"{addresses.mesh_range} }} masquerade\n"
            "\t}\n")

    outside_dns = ('\t\tmeta l4proto { tcp, udp } th dport { 53, 853 } counter name '
                   '"outside_dns_dropped" drop')
    bound = bool(cfg.gate.enabled)  # lease events reach the sets only through the gate
    spoofed = (f'\t\tip saddr . ether saddr != @{LEASED_SET} counter name "spoofed_dropped" '
               "drop\n") if bound else ""
    arp_spoofed = (f"\t\tarp saddr ip . arp saddr ether != @{LEASED_SET} counter name "
                   '"arp_spoofed_dropped" drop\n') if bound else ""
    rate = DHCP_PER_MAC_PER_MINUTE
    per_mac = f"ether saddr limit rate over {rate}/minute burst {rate} packets"
    hub_limit = (f'\t\tiifname != "lo" tcp dport {hub_ports} ct state new add @hub_clients '
                 f"{{ ip saddr ct count over {HUB_CONNECTIONS_PER_ADDRESS} }} "
                 'counter name "hub_conn_limited" reject with tcp reset')
    dhcp_limit = (f"\t\tudp dport 67 update @dhcp_rate {{ {per_mac} }} "
                  'counter name "dhcp_limited" drop')
    return f"""#!/usr/sbin/nft -f
{header(cfg, "nftables: the captive gate for residents' devices")}
table inet {TABLE}
flush table inet {TABLE}
table arp {ARP_TABLE}
flush table arp {ARP_TABLE}

# ARP from the access point: the sender's address must be leased to the sender's MAC
# (0.0.0.0 is a device checking an address before using it).
table arp {ARP_TABLE} {{
\tset {LEASED_SET} {{
\t\ttype ipv4_addr . ether_addr
\t\tflags timeout
\t}}

\tcounter arp_spoofed_dropped {{ comment "ARP claiming an address not leased to its MAC"; }}

\tchain input {{
\t\ttype filter hook input priority filter; policy accept;
\t\tiifname != {ap} accept
\t\tarp saddr ip 0.0.0.0 accept
{arp_spoofed}\t}}
}}

table inet {TABLE} {{
\t# Accepted devices: address bound to MAC, expiring after gate.allow_minutes.
\tset {SET} {{
\t\ttype ipv4_addr . ether_addr
\t\tflags timeout
\t\ttimeout {cfg.gate.allow_minutes}m
\t}}

\t# Leases dnsmasq handed out (address . MAC), fed by its lease events.
\tset {LEASED_SET} {{
\t\ttype ipv4_addr . ether_addr
\t\tflags timeout
\t}}

\t# Open connections to the hub per address (at most {HUB_CONNECTIONS_PER_ADDRESS}).
\tset hub_clients {{
\t\ttype ipv4_addr
\t\tflags dynamic
\t\tsize 65535
\t}}

\t# An emergency broadcast in force: the access point's name, until its end.
\tset {BROADCAST_SET} {{
\t\ttype ifname
\t\tflags timeout
\t}}

\t# Devices whose resident read the emergency notice (address . MAC), until its end.
\tset {READ_SET} {{
\t\ttype ipv4_addr . ether_addr
\t\tflags timeout
\t}}

{cap_sets}\t# DHCP packets per MAC (at most {rate} a minute each).
\tset dhcp_rate {{
\t\ttype ether_addr
\t\tflags dynamic,timeout
\t\ttimeout 1m
\t\tsize 4096
\t}}

{counters}

\tchain prerouting_nat {{
\t\ttype nat hook prerouting priority dstnat; policy accept;
{chr(10).join(nat)}
\t}}

\t# The node itself, as seen from the access point.
\tchain input {{
\t\ttype filter hook input priority filter; policy accept;
{hub_limit}
\t\tiifname != {ap} accept
\t\tmeta nfproto ipv6 counter name "ipv6_dropped" drop
{dhcp_limit}
\t\tudp dport 67 accept
{spoofed}\t\tct state established,related accept
\t\tip daddr {portal} meta l4proto {{ tcp, udp }} th dport {dns_ports} accept
\t\ttcp dport {mgmt} counter name "management_dropped" drop
\t\tip daddr {portal} tcp dport {portal_ports} accept
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
{spoofed}{outside_dns}
\t\toifname {ap} counter name "client_to_client_dropped" drop
\t\tip daddr {addresses.subnet_pool} counter name "client_to_client_dropped" drop
{hold_back}{mesh_mgmt}
\t\tip daddr {addresses.mesh_range} tcp dport {hub_ports} accept
\t\tip daddr {addresses.mesh_range} icmp type echo-request accept
{cap_up}{forward_rules}\t\tcounter name "forward_dropped" drop
\t}}

\tchain to_clients {{
{cap_down}\t\tct state established,related accept
\t\tcounter name "inbound_dropped" drop
\t}}
{postrouting}}}
{forced}"""
