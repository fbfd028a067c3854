"""dnsmasq's configuration: DHCP and DNS for residents' devices on the access point.

* DHCP in the node's client subnet; the portal address is router and DNS server;
  option 114 (RFC 8910) names the RFC 8908 Captive Portal API.
* DNS: the hub answers as ``hub.<domain>`` and ``<node>.<domain>``; the local domain
  is never forwarded.
* **No uplink** (the usual case): ``no-resolv`` and every other name answers with the
  portal address. Nothing outside exists anyway, and this way the phones' captive
  checks (``captive.apple.com``, ``connectivitycheck.gstatic.com`` ...) reach the
  portal, which shows the sheet before acceptance and answers "success" after it.
* **With an uplink, or with ``clients.dns_servers``** (:func:`forwards_dns`): two
  dnsmasq listeners. This one forwards real DNS to ``clients.dns_servers`` (reached
  through the mesh's default route, whichever gateway carries it: docs/uplink.md) or,
  on a gateway without them, to the resolvers in ``/etc/resolv.conf``, for accepted
  devices only (lying DNS would break
  the phones' own check after acceptance). The *walled* resolver
  (:func:`render_walled_dnsmasq`, ``dnsmasq-walled.conf``) listens on the portal
  address at :data:`WALLED_DNS_PORT`, forwards nothing and answers every name with the
  portal address; the gate redirects port 53 of devices not in its allow set there
  (:mod:`node.net.render_nftables`), so a device that has not accepted can never make
  a name leave the node (no DNS tunnel past the gate).
* One lease per device (``dhcp-ignore-clid``: a device cannot take many addresses by
  sending many client identifiers), at most the range's size in all
  (``dhcp-lease-max``); the gate rate-limits DHCP per MAC.
* With the gate's control socket (``gate.enabled``), every lease event runs
  ``lease_hook`` (:mod:`node.gate.leases`), which tells the gate which device holds
  which address; renewals too (``script-on-renewal``). dnsmasq then does not ping an
  address before offering it (``no-ping``): the gate drops whatever a device sends from
  an address not leased to it, the echo reply included, so the check only cost every
  new phone 3 s.
* No IPv6: no DHCPv6 range and no router advertisements, so phones get no IPv6
  route that could skip the gate (the gate also drops IPv6 from clients).
"""

from __future__ import annotations

from node.config import NodeConfig
from node.net._header import header
from node.net.addressing import AddressPlan

#: Port of the walled resolver on the portal address (nodes that forward DNS only). Not 5353
#: (mDNS: avahi and zeroconf listen there).
WALLED_DNS_PORT = 5053


def forwards_dns(cfg: NodeConfig) -> bool:
    """Whether this node forwards accepted residents' DNS (and so runs the walled
    resolver for the others): it has an uplink or ``clients.dns_servers``."""
    return bool(cfg.clients.uplink_interface or cfg.clients.dns_servers)


def render_lease_hook(cfg: NodeConfig, python: str | None = None) -> str:
    """dnsmasq's ``dhcp-script``: runs :mod:`node.gate.leases` with this interpreter
    (``python``, default the one rendering) against the gate's socket."""
    import shlex
    import sys

    program = shlex.quote(python or sys.executable)
    return (f"#!/bin/sh\n{header(cfg, 'dnsmasq lease events to the gate')}"
            f"exec {program} -m node.gate.leases --socket {shlex.quote(str(cfg.gate.socket))}"
            ' "$@"\n')


def render_dnsmasq(cfg: NodeConfig, addresses: AddressPlan, lease_file: str,
                   lease_hook: str | None = None) -> str:
    """The text of ``dnsmasq.conf``; ``lease_file`` is where leases survive a restart,
    ``lease_hook`` the ``dhcp-script`` that reports lease events to the gate."""
    clients = cfg.clients
    portal = addresses.portal_address
    lines = [
        header(cfg, "dnsmasq: DHCP and DNS for residents' devices"),
        f"interface={cfg.wifi.ap_interface}",
        "bind-dynamic",
        "no-hosts",
        "domain-needed",
        "bogus-priv",
        "cache-size=1000",
        "",
        "# DHCP (IPv4 only: no DHCPv6 range and no enable-ra, so no router advertisements).",
        f"dhcp-range={addresses.dhcp_first},{addresses.dhcp_last},"
        f"{addresses.client_subnet.netmask},{clients.lease_minutes}m",
        "dhcp-authoritative",
        f"dhcp-leasefile={lease_file}",
        "# One lease per device, whatever client identifiers it sends; never more than the range.",
        "dhcp-ignore-clid",
        f"dhcp-lease-max={int(addresses.dhcp_last) - int(addresses.dhcp_first) + 1}",
        f"dhcp-option=option:router,{portal}",
        f"dhcp-option=option:dns-server,{portal}",
        f"domain={clients.domain}",
        *(["# Lease events tell the gate which device holds which address.",
           f"dhcp-script={lease_hook}", "script-on-renewal",
           "# No ping of an address before offering it: behind the gate a device answers",
           "# only from an address leased to it, so the check could never hear a reply and",
           "# only made every new phone wait 3 s for its offer.",
           "no-ping"] if lease_hook else []),
        "# RFC 8910: option 114 names the RFC 8908 Captive Portal API.",
        f"dhcp-option-force=114,{addresses.captive_api_url}",
        "",
        "# The hub's names, and the local domain is never sent upstream.",
        f"local=/{clients.domain}/",
    ]
    lines += [f"address=/{name}/{portal}" for name in addresses.hub_names]
    if forwards_dns(cfg):
        upstream = (["no-resolv", *(f"server={a}" for a in clients.dns_servers)]
                    if clients.dns_servers else ["resolv-file=/etc/resolv.conf"])
        where = ("clients.dns_servers, through the mesh's default route" if clients.dns_servers
                 else f"/etc/resolv.conf (uplink on {clients.uplink_interface})")
        lines += [
            "",
            f"# Real DNS via {where}, for",
            "# accepted devices only: the gate sends the others' port 53 to the walled",
            "# resolver (dnsmasq-walled.conf), which forwards nothing.",
            *upstream,
            "stop-dns-rebind",
            f"rebind-domain-ok=/{clients.domain}/",
        ]
    else:
        lines += [
            "",
            "# No uplink: nothing to forward to; every other name is the portal.",
            "no-resolv",
            f"address=/#/{portal}",
        ]
    return "\n".join(lines) + "\n"


def render_walled_dnsmasq(cfg: NodeConfig, addresses: AddressPlan) -> str:
    """The text of ``dnsmasq-walled.conf``: the resolver for devices that have not accepted.

    DNS only (no DHCP range), on the portal address at :data:`WALLED_DNS_PORT`, and it
    forwards nothing (``no-resolv``, no ``server=``): the hub's names and every other
    name answer with the portal address, with a TTL of 0 so that a phone does not keep
    the portal's address for a real name once it has accepted. The gate sends unaccepted
    devices' port 53 here; accepted devices reach the forwarding dnsmasq on port 53.
    """
    portal = addresses.portal_address
    lines = [
        header(cfg, "dnsmasq: the walled resolver for devices that have not accepted"),
        f"listen-address={portal}",
        f"port={WALLED_DNS_PORT}",
        "bind-dynamic",
        "no-hosts",
        "# Forwards nothing, ever: no upstream resolvers are read or named.",
        "no-resolv",
        "# Every name (the phones' captive checks included) is the portal; not cached.",
        f"address=/#/{portal}",
        "local-ttl=0",
        "cache-size=0",
    ]
    return "\n".join(lines) + "\n"
