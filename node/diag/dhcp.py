"""``meshhub diag dhcp``: send a DHCP DISCOVER and list every server that offers.

A second DHCP server on a node's segment (a home router plugged in the wrong way
round, a misconfigured node) hands out wrong routers and DNS servers: residents'
phones then reach nothing, or something else. dnsmasq answers only for its own
subnet, so the one way to see a rogue is to ask like a client and listen for *all*
offers, which is what this does (scapy, on a raw socket of the one interface).

The DISCOVER has a random transaction id and the broadcast flag (so every server
answers to the broadcast address, which we hear even without an address of our
own). Its client hardware address is the interface's MAC, or a random locally
administered one with ``random_mac``; the frame's own source is always the
interface's MAC, because a Wi-Fi access point only forwards frames from the MAC
that associated. A DISCOVER takes no lease: servers only reserve the offered
address for a moment.
"""

from __future__ import annotations

import secrets
import select
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from node.diag import DiagError
from node.diag.link import interface_mac, random_local_mac, require_raw_access
from node.frozen import frozen

#: Options asked for: mask, router, DNS, domain, lease time, server id, captive API.
REQUESTED_OPTIONS = [1, 3, 6, 15, 51, 54, 114]
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
#: Seconds to wait for offers: dnsmasq pings an address (up to 3 s) before offering it.
DHCP_TIMEOUT = 6.0


@frozen
class Offer:
    """One server's answer, as a technician reads it."""

    server_id: str
    server_mac: str
    offered: str
    subnet_mask: str | None = None
    router: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    lease_seconds: int | None = None
    captive_url: str | None = None
    domain: str | None = None
    source_ip: str = ""

    @property
    def subnet(self) -> IPv4Network:
        """The offered address's subnet (a /32 when no mask was offered)."""
        return IPv4Network(f"{self.offered}/{self.subnet_mask or '255.255.255.255'}",
                           strict=False)


@dataclass
class DhcpReport:
    """Every offer heard, and which ones are rogue.

    With an ``expected`` server (its address), every other server is rogue. Without
    one, more than one server is itself the problem, and every server is flagged.
    """

    offers: list[Offer]
    expected: str | None = None
    chaddr: str = ""
    timeout: float = 0.0
    rogues: list[Offer] = field(init=False)

    def __post_init__(self) -> None:
        if self.expected:
            self.rogues = [o for o in self.offers
                           if self.expected not in (o.server_id, o.source_ip)]
        else:
            self.rogues = list(self.offers) if len(self.offers) > 1 else []

    def is_rogue(self, offer: Offer) -> bool:
        """Whether ``offer`` comes from a server that should not be there."""
        return offer in self.rogues


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def dhcp_options(packet: Packet) -> dict[str, tuple[Any, ...]]:
    """The DHCP options of ``packet`` by scapy's name (or number), values as a tuple."""
    options: dict[str, tuple[Any, ...]] = {}
    for item in packet[DHCP].options:
        if isinstance(item, tuple) and item:
            options[str(item[0])] = tuple(item[1:])
    return options


def message_type(packet: Packet) -> int | None:
    """The DHCP message type (2 offer, 5 ack, 6 nak), or None for a non-DHCP packet."""
    if DHCP not in packet:
        return None
    value = dhcp_options(packet).get("message-type", (None,))[0]
    return int(value) if isinstance(value, int) else None


def parse_offer(packet: Packet) -> Offer:
    """The :class:`Offer` (or ACK: same fields) carried by a server's ``packet``."""
    opts = dhcp_options(packet)

    def one(name: str) -> Any:
        return opts.get(name, (None,))[0]

    captive = opts.get("captive-portal", opts.get("114", (None,)))[0]
    lease = one("lease_time")
    source = packet[IP].src if IP in packet else ""
    return Offer(
        server_id=str(one("server_id") or source),
        server_mac=packet[Ether].src if Ether in packet else "",
        offered=str(packet[BOOTP].yiaddr),
        subnet_mask=one("subnet_mask"),
        router=tuple(str(r) for r in opts.get("router", ())),
        dns=tuple(str(d) for d in opts.get("name_server", ())),
        lease_seconds=int(lease) if isinstance(lease, int) else None,
        captive_url=_text(captive) if captive is not None else None,
        domain=_text(one("domain")).rstrip("\0") if one("domain") is not None else None,
        source_ip=source,
    )


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def build_discover(frame_mac: str, chaddr: str, xid: int) -> Packet:
    """A broadcast DHCP DISCOVER from ``frame_mac`` for the client ``chaddr``."""
    return (Ether(src=frame_mac, dst=BROADCAST_MAC)
            / IP(src="0.0.0.0", dst="255.255.255.255")  # noqa: S104 - DHCP's "no address yet"
            / UDP(sport=68, dport=67)
            / BOOTP(chaddr=_mac_bytes(chaddr), xid=xid, flags=0x8000)
            / DHCP(options=[("message-type", "discover"),
                            ("client_id", b"\x01" + _mac_bytes(chaddr)),
                            ("param_req_list", REQUESTED_OPTIONS), "end"]))


def build_request(frame_mac: str, chaddr: str, xid: int, offer: Offer) -> Packet:
    """The broadcast DHCP REQUEST that accepts ``offer`` (and declines all others)."""
    return (Ether(src=frame_mac, dst=BROADCAST_MAC)
            / IP(src="0.0.0.0", dst="255.255.255.255")  # noqa: S104
            / UDP(sport=68, dport=67)
            / BOOTP(chaddr=_mac_bytes(chaddr), xid=xid, flags=0x8000)
            / DHCP(options=[("message-type", "request"),
                            ("client_id", b"\x01" + _mac_bytes(chaddr)),
                            ("requested_addr", offer.offered),
                            ("server_id", offer.server_id),
                            ("param_req_list", REQUESTED_OPTIONS), "end"]))


def _is_reply(packet: Packet, xid: int, kinds: set[int]) -> bool:
    return (BOOTP in packet and packet[BOOTP].op == 2 and packet[BOOTP].xid == xid
            and message_type(packet) in kinds)


class _Wire:
    """A raw socket on one interface: send a frame, collect matching replies."""

    def __init__(self, iface: str) -> None:
        from scapy.arch.linux import L2Socket

        self.socket = L2Socket(iface=iface)

    def close(self) -> None:
        self.socket.close()

    def exchange(self, frame: Packet, xid: int, kinds: set[int], timeout: float,
                 first_only: bool = False) -> list[Packet]:
        """Send ``frame`` (again at half time) and return the replies heard in ``timeout``."""
        replies: list[Packet] = []
        start = time.monotonic()
        deadline, resent = start + timeout, False
        self.socket.send(frame)
        while (remaining := deadline - time.monotonic()) > 0:
            if not resent and time.monotonic() - start > timeout / 2 and not replies:
                self.socket.send(frame)  # a lost broadcast is common on busy Wi-Fi
                resent = True
            ready, _, _ = select.select([self.socket], [], [], min(remaining, 0.2))
            if not ready:
                continue
            packet = self.socket.recv()
            if packet is not None and _is_reply(packet, xid, kinds):
                replies.append(packet)
                if first_only:
                    break
        return replies


def discover(iface: str, *, timeout: float = DHCP_TIMEOUT, expected: str | None = None,
             random_mac: bool = False) -> DhcpReport:
    """Broadcast one DISCOVER on ``iface`` and report every distinct server's OFFER."""
    require_raw_access(iface, "meshhub diag dhcp")
    frame_mac = interface_mac(iface)
    chaddr = random_local_mac() if random_mac else frame_mac
    xid = secrets.randbits(32)
    wire = _Wire(iface)
    try:
        replies = wire.exchange(build_discover(frame_mac, chaddr, xid), xid, {2}, timeout)
    finally:
        wire.close()
    offers: dict[tuple[str, str], Offer] = {}
    for packet in replies:
        offer = parse_offer(packet)
        offers.setdefault((offer.server_id, offer.server_mac), offer)
    return DhcpReport(list(offers.values()), expected, chaddr, timeout)


@frozen
class Lease:
    """The address a server acknowledged, with what came with it."""

    offer: Offer
    offers_heard: int

    @property
    def address(self) -> IPv4Address:
        """The leased address."""
        return IPv4Address(self.offer.offered)

    @property
    def router(self) -> IPv4Address | None:
        """The first router offered, if any."""
        return IPv4Address(self.offer.router[0]) if self.offer.router else None


def obtain_lease(iface: str, *, timeout: float = DHCP_TIMEOUT,
                 expected: str | None = None) -> Lease:
    """DISCOVER, then REQUEST the offer of ``expected`` (else the first), like a phone.

    The lease is not released afterwards (a phone does not either): running the
    diagnostic again from the same interface gets the same address.
    """
    require_raw_access(iface, "meshhub diag portal")
    mac = interface_mac(iface)
    xid = secrets.randbits(32)
    wire = _Wire(iface)
    try:
        replies = wire.exchange(build_discover(mac, mac, xid), xid, {2}, timeout,
                                first_only=expected is None)
        offers = [parse_offer(p) for p in replies]
        if not offers:
            raise DiagError(f"no DHCP server answered on {iface} within {timeout:g}s: a phone "
                            "would stay at 'obtaining IP address' (is dnsmasq running?)")
        chosen = next((o for o in offers if expected in (o.server_id, o.source_ip)), offers[0])
        acks = wire.exchange(build_request(mac, mac, xid, chosen), xid, {5, 6}, timeout,
                             first_only=True)
    finally:
        wire.close()
    if not acks:
        raise DiagError(f"{chosen.server_id} offered {chosen.offered} but did not confirm it "
                        f"within {timeout:g}s")
    if message_type(acks[0]) == 6:
        raise DiagError(f"{chosen.server_id} refused the address it offered ({chosen.offered})")
    return Lease(parse_offer(acks[0]), len({o.server_id for o in offers}))


def format_report(report: DhcpReport) -> str:
    """The plain-text answer of ``meshhub diag dhcp``."""
    lines = [f"DHCP servers answering a DISCOVER (client {report.chaddr}, "
             f"{report.timeout:g}s):"]
    if not report.offers:
        lines.append("  none: no DHCP server answered. A phone would stay at "
                     "'obtaining IP address'.")
    for offer in report.offers:
        flag = "  ROGUE" if report.is_rogue(offer) else ""
        expected = "  (expected)" if report.expected and not flag else ""
        lines.append(f"- server {offer.server_id} (MAC {offer.server_mac}){flag}{expected}")
        lines.append(f"    offers {offer.offered}/{offer.subnet.prefixlen}, "
                     f"router {', '.join(offer.router) or 'none'}, "
                     f"DNS {', '.join(offer.dns) or 'none'}, lease "
                     + (f"{offer.lease_seconds}s" if offer.lease_seconds is not None else "?"))
        lines.append(f"    option 114 (captive API): {offer.captive_url or 'absent'}")
    if report.rogues and report.expected:
        lines.append(f"{len(report.rogues)} rogue server(s): only {report.expected} should "
                     "answer here. Find the device by its MAC (see docs/diagnostics.md).")
        if len(report.rogues) == len(report.offers):
            lines.append(f"Expected {report.expected}, which did not answer.")
    elif report.rogues:
        lines.append("More than one DHCP server answers: only one should. Say which is "
                     "yours with --expect ADDRESS (or -c node.toml).")
    elif report.expected and not report.offers:
        lines.append(f"Expected {report.expected}, which did not answer.")
    elif report.expected:
        lines.append("No rogue DHCP server heard.")
    return "\n".join(lines)
