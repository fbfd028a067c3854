"""dnsmasq's configuration: DHCP and DNS for residents' devices on the access point.

* DHCP in the node's client subnet; the portal address is router and DNS server;
  option 114 (RFC 8910) names the RFC 8908 Captive Portal API.
* DNS: the hub answers as ``hub.<domain>`` and ``<node>.<domain>``; the local domain
  is never forwarded.
* **No uplink** (the usual case): ``no-resolv`` and every other name answers with the
  portal address. Nothing outside exists anyway, and this way the phones' captive
  checks (``captive.apple.com``, ``connectivitycheck.gstatic.com`` ...) reach the
  portal, which shows the sheet before acceptance and answers "success" after it.
* **With an uplink**: real DNS, forwarded to the resolvers in ``/etc/resolv.conf``
  (as openNDS does). Lying DNS would break the phones' own check after acceptance;
  the gate's port-80 redirect brings unaccepted phones to the portal instead.
* One lease per device (``dhcp-ignore-clid``: a device cannot take many addresses by
  sending many client identifiers), at most the range's size in all
  (``dhcp-lease-max``); the gate rate-limits DHCP per MAC.
* With the gate's control socket (``gate.enabled``), every lease event runs
  ``lease_hook`` (:mod:`node.gate.leases`), which tells the gate which device holds
  which address; renewals too (``script-on-renewal``).
* No IPv6: no DHCPv6 range and no router advertisements, so phones get no IPv6
  route that could skip the gate (the gate also drops IPv6 from clients).
"""

from __future__ import annotations

from node.config import NodeConfig
from node.net._header import header
from node.net.addressing import AddressPlan


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
           f"dhcp-script={lease_hook}", "script-on-renewal"] if lease_hook else []),
        "# RFC 8910: option 114 names the RFC 8908 Captive Portal API.",
        f"dhcp-option-force=114,{addresses.captive_api_url}",
        "",
        "# The hub's names, and the local domain is never sent upstream.",
        f"local=/{clients.domain}/",
    ]
    lines += [f"address=/{name}/{portal}" for name in addresses.hub_names]
    if clients.uplink_interface:
        lines += [
            "",
            f"# Uplink on {clients.uplink_interface}: real DNS via /etc/resolv.conf.",
            "resolv-file=/etc/resolv.conf",
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
