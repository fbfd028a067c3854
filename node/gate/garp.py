"""A gratuitous ARP for the portal's address, sent when a lease has just been bound.

A phone that takes a lease configures its address and asks at once (ARP) for its
router, the portal's address. That request usually reaches the node *before* dnsmasq's
lease event has bound the address to the phone's MAC in the gate, so the gate's ARP
defence drops it (``arp_spoofed_dropped``) and the phone's kernel asks again only a
second later: a second in which a roaming phone, already let through, could not send a
packet (measured in the lab: 1.02 s from lease to traffic, one ARP request dropped).

Right after the bind the gate broadcasts one gratuitous ARP request for the portal's
address from the access point. A phone whose request for the router is still pending
takes the answer from it at once (Linux updates a pending neighbour entry from any
ARP naming it, and sends what it queued); a phone that asks later is bound already.
One broadcast frame per lease event; nothing about the phone is in it.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

#: Ethernet type of ARP, and ARP's fixed fields for IPv4 over Ethernet (a request).
ETH_P_ARP = 0x0806
_ARP_IPV4_REQUEST = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
#: The shortest Ethernet frame without its checksum; shorter ones are padded.
MIN_FRAME = 60
#: ioctl reading an interface's IPv4 address (linux/sockios.h).
SIOCGIFADDR = 0x8915


def garp_frame(mac: str, address: str) -> bytes:
    """A broadcast gratuitous ARP request: ``address`` is at ``mac`` (sender and target
    address both ``address``)."""
    hw = bytes.fromhex(mac.replace(":", ""))
    if len(hw) != 6:
        raise ValueError(f"{mac!r} is not a MAC address")
    ip = ipaddress.IPv4Address(address).packed
    frame = (b"\xff" * 6 + hw + struct.pack("!H", ETH_P_ARP) + _ARP_IPV4_REQUEST
             + hw + ip + b"\x00" * 6 + ip)
    return frame.ljust(MIN_FRAME, b"\x00")


def interface_address(interface: str) -> str | None:
    """The IPv4 address of ``interface`` (its first), or None when it has none or does
    not exist."""
    import fcntl

    request = struct.pack("256s", interface.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])


def announce(interface: str, address: str, sys_class_net: Path = Path("/sys/class/net")
             ) -> bool:
    """Send :func:`garp_frame` for ``address`` from ``interface`` if that interface holds
    ``address`` (so never on a machine that is not this node, e.g. in a test); whether
    it was sent. Needs CAP_NET_RAW; ``OSError`` when it cannot be sent."""
    if interface_address(interface) != address:
        return False
    mac = (sys_class_net / interface / "address").read_text().strip()
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((interface, 0))
        sock.send(garp_frame(mac, address))
    return True
