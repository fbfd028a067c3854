"""The interface a diagnostic works on: its MAC, raw access, and a borrowed address.

Everything here stays on the one interface the technician names: sockets are bound
to it (``SO_BINDTODEVICE``) and the address a diagnostic borrows is removed again,
with its routing rule, when the diagnostic ends.
"""

from __future__ import annotations

import contextlib
import errno
import json
import secrets
import socket
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from node.diag import DiagError
from node.errors import NotFound, PermissionDenied

#: First routing table and rule priority used for a borrowed address (a random
#: offset is added so two diagnostics never share one).
TABLE_BASE = 0x6D68_0000
RULE_PRIORITY = 9000


def interface_mac(iface: str, sys_root: Path = Path("/sys")) -> str:
    """The MAC address of ``iface`` (``NotFound`` naming the interface if it has none)."""
    path = sys_root / "class" / "net" / iface / "address"
    try:
        return path.read_text(encoding="ascii").strip().lower()
    except FileNotFoundError:
        raise NotFound(f"no network interface {iface!r} (see 'ip link')") from None


def random_local_mac() -> str:
    """A random unicast, locally administered MAC (bit 1 of the first octet set).

    Such an address can never belong to a real card, so a DHCP server sees a
    stranger, as it does a phone with MAC randomisation.
    """
    octets = bytearray(secrets.token_bytes(6))
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{o:02x}" for o in octets)


def require_raw_access(iface: str, command: str) -> None:
    """Fail clearly unless raw packets can be sent on ``iface`` (CAP_NET_RAW, root)."""
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
            sock.bind((iface, 0))
    except PermissionError:
        raise PermissionDenied(
            f"'{command}' sends and captures raw packets, which needs CAP_NET_RAW: "
            f"run it as root (sudo meshhub diag ...)") from None
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise NotFound(f"no network interface {iface!r} (see 'ip link')") from None
        raise


def bind_to_interface(sock: socket.socket, iface: str, source: str) -> None:
    """Bind ``sock`` to ``iface`` and to the address ``source`` (nothing leaves elsewhere)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    sock.bind((source, 0))


def _ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip``; with ``check`` a failure raises :class:`DiagError` quoting ``ip``."""
    result = subprocess.run(["ip", *argv], capture_output=True, text=True, check=False,
                            timeout=10)
    if check and result.returncode != 0:
        raise DiagError(f"'ip {' '.join(argv)}' failed: {result.stderr.strip()}")
    return result


def addresses_of(iface: str) -> set[str]:
    """The IPv4 addresses ``iface`` holds now."""
    result = _ip("-j", "-4", "address", "show", "dev", iface, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return set()
    return {info["local"] for link in json.loads(result.stdout)
            for info in link.get("addr_info", []) if "local" in info}


@contextlib.contextmanager
def borrowed_address(iface: str, address: IPv4Address, subnet: IPv4Network,
                     router: IPv4Address | None) -> Iterator[bool]:
    """Hold ``address`` on ``iface`` while the block runs; yields whether it was added.

    If the interface already holds the address (the laptop's own lease), nothing is
    changed. Otherwise the address is added, and a routing rule for traffic *from*
    that address only (its own table: the subnet on ``iface`` and, with a router, a
    default route through it) lets the diagnostic reach what a phone would without
    touching the computer's other routes. All of it is removed at the end.
    """
    if str(address) in addresses_of(iface):
        yield False
        return
    table = str(TABLE_BASE + secrets.randbelow(0xFFFF))
    priority = str(RULE_PRIORITY + secrets.randbelow(500))
    prefix = f"{address}/{subnet.prefixlen}"
    try:
        _ip("address", "add", prefix, "dev", iface, "noprefixroute")
        _ip("route", "add", str(subnet), "dev", iface, "src", str(address), "table", table)
        if router is not None:
            _ip("route", "add", "default", "via", str(router), "dev", iface, "table", table)
        _ip("rule", "add", "from", f"{address}/32", "table", table, "priority", priority)
        yield True
    finally:
        _ip("rule", "del", "from", f"{address}/32", "table", table, "priority", priority,
            check=False)
        _ip("route", "flush", "table", table, check=False)
        _ip("address", "del", prefix, "dev", iface, check=False)
