"""The gate's privileged half: elements of the nftables allow set, and the neighbour table.

Accepting a resident is one set element ``address . MAC`` with a timeout (constant
cost whatever the number of residents); nftables removes it by itself when the
timeout runs out, after which the device's probes are redirected to the portal again.
The portal only knows a device's address, so the MAC is read from the kernel's
neighbour table of the access-point interface (``ip -j neigh``, or ``/proc/net/arp``).

Every command goes through an injectable runner, so tests can check exactly what is
run without root; the lab tests run the real ``nft`` inside a namespace.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from node.frozen import frozen
from node.gate.protocol import GateError, GateStatus, LeaseStatus, parse_ipv4

if TYPE_CHECKING:
    from node.config import NodeConfig

#: ``runner(argv, stdin_text) -> (returncode, stdout, stderr)``.
Runner = Callable[[Sequence[str], "str | None"], tuple[int, str, str]]

#: Seconds any one ``nft``/``ip`` command may take: a guard against a hung command, not a
#: deadline (the first nft of a boot loads the kernel's nf_tables modules, which took over
#: 5 s on a busy machine: the radio lab in a TCG virtual machine).
COMMAND_TIMEOUT_SECONDS = 30.0

_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_DURATION = re.compile(r"(\d+)(ms|d|h|m|s)")
_UNIT_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
#: Neighbour states whose link-layer address can be trusted to be current enough.
#: Seconds a lease stays bound after dnsmasq's own expiry (a late renewal, clocks).
LEASE_GRACE_SECONDS = 60
_USABLE_STATES = {"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"}


def run_command(argv: Sequence[str], stdin: str | None = None) -> tuple[int, str, str]:
    """Run ``argv`` (no shell) with a timeout; a missing program is returncode 127."""
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_SECONDS, check=False)
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]}: no answer within {COMMAND_TIMEOUT_SECONDS:g}s"
    return done.returncode, done.stdout, done.stderr


def parse_duration_ms(text: str) -> int:
    """An nftables duration (``1d2h3m4s5ms``) in milliseconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not an nftables duration: {text!r}")
    return sum(int(n) * _UNIT_MS[u] for n, u in parts)


def normalise_mac(text: str) -> str:
    """``text`` as a lower-case colon-separated MAC, or :class:`GateError`."""
    mac = text.strip().lower().replace("-", ":")
    if not _MAC.fullmatch(mac):
        raise GateError("bad-request", f"not a MAC address: {text!r}")
    return mac


@frozen
class Element:
    """One element of the allow set."""

    ip: str
    mac: str
    seconds_remaining: int | None


class GateManager:
    """Adds, checks and removes residents' devices in the gate's allow set.

    ``interface`` is the access point (where the neighbour table is read);
    ``subnet`` (when given) is the only range devices may come from;
    ``allow_seconds`` is how long an accepted device stays allowed;
    ``mode`` is ``portal``, ``open`` (everyone counts as allowed) or ``forced``.
    """

    def __init__(self, interface: str, *, allow_seconds: int, table: str = "meshhub",
                 set_name: str = "allowed", subnet: str | None = None, mode: str = "portal",
                 runner: Runner = run_command, arp_path: Path | None = None,
                 arp_table: str = "meshhub_arp", leased_set: str = "leased") -> None:
        self.interface = interface
        self.arp_table = arp_table
        self.leased_set = leased_set
        self.allow_seconds = int(allow_seconds)
        self.table = table
        self.set_name = set_name
        self.subnet = ipaddress.IPv4Network(subnet) if subnet else None
        self.mode = mode
        self._run = runner
        self._arp_path = arp_path

    @classmethod
    def from_config(cls, cfg: NodeConfig, *, mode: str = "portal",
                    runner: Runner | None = None) -> GateManager:
        """The manager for a node's configuration (``gate.*``, the address plan)."""
        from node.net import address_plan
        from node.net.render_nftables import ARP_TABLE, LEASED_SET, SET, TABLE

        addresses = address_plan(cfg)
        return cls(str(cfg.wifi.ap_interface), allow_seconds=int(cfg.gate.allow_minutes) * 60,
                   table=TABLE, set_name=SET, subnet=str(addresses.client_subnet),
                   arp_table=ARP_TABLE, leased_set=LEASED_SET, mode=mode,
                   runner=runner or run_command)

    # --- the public operations ---------------------------------------------------
    def allow(self, ip: str, mac: str | None = None, seconds: int | None = None) -> GateStatus:
        """Let ``ip`` (bound to ``mac``, else to the MAC the node sees) through for
        ``seconds`` (default ``allow_seconds``). Accepting again restarts the timer."""
        ip = self._client_ip(ip)
        mac = normalise_mac(mac) if mac else self._require_mac(ip)
        timeout = int(self.allow_seconds if seconds is None else seconds)
        if timeout < 1:
            raise GateError("bad-request", "a timeout must be at least one second")
        element = f"{{ {ip} . {mac} timeout {timeout}s }}"
        key = f"{{ {ip} . {mac} }}"
        where = f"inet {self.table} {self.set_name}"
        # add (so that delete cannot fail), delete, add: one transaction that
        # restarts the element's timer whether or not it existed.
        script = (f"add element {where} {element}\ndelete element {where} {key}\n"
                  f"add element {where} {element}\n")
        self._nft(["nft", "-f", "-"], script)
        return GateStatus(ip, mac, True, timeout, self.mode)

    def status(self, ip: str) -> GateStatus:
        """Whether ``ip`` with the MAC the node sees for it is let through, and how long."""
        ip = self._client_ip(ip)
        mac = self.mac_of(ip)
        if self.mode == "open":
            return GateStatus(ip, mac, True, None, self.mode)
        if mac is None:
            return GateStatus(ip, None, False, None, self.mode)
        code, out, _err = self._run(["nft", "get", "element", "inet", self.table,
                                     self.set_name, f"{{ {ip} . {mac} }}"], None)
        if code != 0:
            return GateStatus(ip, mac, False, None, self.mode)
        match = re.search(r"\bexpires (\S+?)\s*[,}\n]", out)
        remaining = parse_duration_ms(match.group(1)) // 1000 if match else None
        return GateStatus(ip, mac, True, remaining, self.mode)

    def remove(self, ip: str) -> GateStatus:
        """Stop letting ``ip`` through, whatever MAC it was bound to."""
        ip = self._client_ip(ip)
        where = f"inet {self.table} {self.set_name}"
        keys = [e for e in self.elements() if e.ip == ip]
        if keys:
            script = "".join(f"delete element {where} {{ {e.ip} . {e.mac} }}\n" for e in keys)
            self._nft(["nft", "-f", "-"], script)
        return GateStatus(ip, self.mac_of(ip), self.mode == "open", None, self.mode)

    def elements(self) -> list[Element]:
        """Every element of the allow set (for ``meshhub gate list``)."""
        out = self._nft(["nft", "-j", "list", "set", "inet", self.table, self.set_name])
        found: list[Element] = []
        for item in json.loads(out).get("nftables", []):
            for elem in item.get("set", {}).get("elem", []):
                inner = elem.get("elem", elem) if isinstance(elem, dict) else {}
                value = inner.get("val", inner) if isinstance(inner, dict) else inner
                concat = value.get("concat") if isinstance(value, dict) else None
                if not concat or len(concat) != 2:
                    continue
                expires = inner.get("expires") if isinstance(inner, dict) else None
                found.append(Element(str(concat[0]), str(concat[1]),
                                     None if expires is None else int(expires)))
        return found

    # --- other sets of the table (node.gate.broadcast) ---------------------------------
    def nft_script(self, script: str) -> None:
        """Run ``script`` with ``nft -f -`` (one transaction); GateError when it fails."""
        self._nft(["nft", "-f", "-"], script)

    def has_element(self, set_name: str, ip: str, mac: str) -> bool:
        """Whether ``ip . mac`` is in the table's set ``set_name``."""
        code, _out, _err = self._run(["nft", "get", "element", "inet", self.table, set_name,
                                      f"{{ {ip} . {normalise_mac(mac)} }}"], None)
        return code == 0

    def add_element(self, set_name: str, ip: str, mac: str, seconds: int) -> None:
        """Put ``ip . mac`` into the table's set ``set_name`` for ``seconds`` (restarting its
        time if it was there)."""
        ip, mac = self._client_ip(ip), normalise_mac(mac)
        where = f"inet {self.table} {set_name}"
        element = f"{{ {ip} . {mac} timeout {max(1, int(seconds))}s }}"
        self._nft(["nft", "-f", "-"], f"add element {where} {element}\ndelete element {where} "
                  f"{{ {ip} . {mac} }}\nadd element {where} {element}\n")

    # --- leases (dnsmasq's lease events) -------------------------------------------
    def bind(self, ip: str, mac: str, seconds: int) -> LeaseStatus:
        """Record that dnsmasq leased ``ip`` to ``mac`` for ``seconds`` (and a minute's grace).

        Both ``leased`` sets (ARP's and IPv4's) get the element in one transaction;
        binding again restarts its time (a renewal).
        """
        return self.bind_many([(ip, mac, seconds)])[0]

    def bind_many(self, leases: Sequence[tuple[str, str, int]]) -> list[LeaseStatus]:
        """:meth:`bind` for several leases at once (one ``nft`` transaction)."""
        script, done = "", []
        for ip, mac, seconds in leases:
            ip, mac = self._client_ip(ip), normalise_mac(mac)
            timeout = max(1, int(seconds)) + LEASE_GRACE_SECONDS
            key = f"{{ {ip} . {mac} }}"
            element = f"{{ {ip} . {mac} timeout {timeout}s }}"
            for where in self._leased_sets():
                script += (f"add element {where} {element}\ndelete element {where} {key}\n"
                           f"add element {where} {element}\n")
            done.append(LeaseStatus(ip, mac, True, timeout))
        if script:
            self._nft(["nft", "-f", "-"], script)
        return done

    def unbind(self, ip: str, mac: str) -> LeaseStatus:
        """Forget that ``ip`` is leased to ``mac`` (dnsmasq's lease ended)."""
        ip, mac = self._client_ip(ip), normalise_mac(mac)
        key = f"{{ {ip} . {mac} }}"
        # add (so that delete cannot fail), then delete: one transaction.
        script = "".join(f"add element {where} {key}\ndelete element {where} {key}\n"
                         for where in self._leased_sets())
        self._nft(["nft", "-f", "-"], script)
        return LeaseStatus(ip, mac, False, None)

    def _leased_sets(self) -> tuple[str, str]:
        return (f"inet {self.table} {self.leased_set}", f"arp {self.arp_table} {self.leased_set}")

    # --- the neighbour table -------------------------------------------------------
    def mac_of(self, ip: str) -> str | None:
        """The MAC the node's neighbour table holds for ``ip`` on the AP, if any."""
        if self._arp_path is not None:
            return self._mac_from_proc(ip)
        code, out, _err = self._run(["ip", "-j", "neigh", "show", "dev", self.interface,
                                     "to", ip], None)
        if code == 127:  # no iproute2: fall back to the kernel's ARP table
            return self._mac_from_proc(ip)
        if code != 0:
            return None
        try:
            entries = json.loads(out or "[]")
        except json.JSONDecodeError:
            return None
        for entry in entries:
            states = set(entry.get("state", []))
            if entry.get("dst") == ip and entry.get("lladdr") and states & _USABLE_STATES:
                return normalise_mac(entry["lladdr"])
        return None

    def _mac_from_proc(self, ip: str) -> str | None:
        path = self._arp_path or Path("/proc/net/arp")
        try:
            lines = path.read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            return None
        for line in lines:
            fields = line.split()
            # IP address, HW type, Flags, HW address, Mask, Device
            if len(fields) >= 6 and fields[0] == ip and fields[5] == self.interface \
                    and int(fields[2], 16) & 0x2 and fields[3] != "00:00:00:00:00:00":
                return normalise_mac(fields[3])
        return None

    # --- helpers -------------------------------------------------------------------
    def _client_ip(self, ip: str) -> str:
        ip = parse_ipv4(ip)
        if self.subnet is not None and ipaddress.IPv4Address(ip) not in self.subnet:
            raise GateError("not-a-client", f"{ip} is not in this node's client subnet "
                            f"{self.subnet}")
        return ip

    def _require_mac(self, ip: str) -> str:
        mac = self.mac_of(ip)
        if mac is None:
            raise GateError("unknown-device", f"no device with address {ip} is known on "
                            f"{self.interface}; is it connected to this node's Wi-Fi?")
        return mac

    def _nft(self, argv: list[str], stdin: str | None = None) -> str:
        code, out, err = self._run(argv, stdin)
        if code != 0:
            raise GateError("gate-failed", f"{' '.join(argv)} failed ({code}): "
                            f"{err.strip() or out.strip()}")
        return out
