"""Small readers of one fact each: DHCP leases, the gate's allow set, SD wear, services.

Each takes its file path, root directory or command runner as an argument so
tests point it at fixture trees and canned outputs.  None of them raises for
a missing or malformed source: they return ``None`` ("absent") and report the
problem once through the caller's :class:`~node.logs.OnceLogger`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from node.frozen import frozen
from node.logs import OnceLogger

#: Runs a command; returns (exit status, stdout, stderr).  Injected in tests.
Runner = Callable[[Sequence[str]], "tuple[int, str, str]"]

#: Largest leases file or command output read; more is a sign of trouble.
MAX_INPUT_BYTES = 4 * 1024 * 1024
COMMAND_TIMEOUT_SECONDS = 5.0

_MAC = re.compile(r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$")


def run_command(argv: Sequence[str]) -> tuple[int, str, str]:
    """Run ``argv`` with a timeout; a missing program reads as exit status 127."""
    if shutil.which(argv[0]) is None:
        return 127, "", f"{argv[0]}: command not found"
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]}: timed out after {COMMAND_TIMEOUT_SECONDS:g} s"
    return done.returncode, done.stdout[:MAX_INPUT_BYTES], done.stderr[:4096]


def json_rows(runner: Runner, argv: Sequence[str]) -> list[dict[str, Any]] | None:
    """The objects of the JSON list a ``-j`` command (``ip -j``, ``tc -j``) prints; None
    when it fails or prints anything else, so a caller can tell "none" from "unknown"."""
    status, out, _err = runner(argv)
    if status != 0:
        return None
    try:
        rows = json.loads(out or "[]")
    except ValueError:
        return None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else None


def _read_capped(path: Path) -> str:
    with path.open("rb") as handle:
        raw = handle.read(MAX_INPUT_BYTES + 1)
    if len(raw) > MAX_INPUT_BYTES:
        raise ValueError(f"larger than {MAX_INPUT_BYTES} bytes")
    return raw.decode("utf-8", errors="replace")


def count_dhcp_leases(path: Path, problems: OnceLogger, now: float | None = None) -> int | None:
    """Count the current IPv4 leases in a dnsmasq leases file.

    dnsmasq writes one lease per line: ``EXPIRY MAC IP HOSTNAME CLIENT-ID``
    (expiry in Unix seconds, 0 for an infinite lease), plus a ``duid`` line
    and IPv6 lines (with an IAID instead of a MAC) when it serves DHCPv6.
    Lines that fit neither are skipped and reported once.  A missing file
    means no DHCP server runs here: ``None``.
    """
    key = f"leases:{path}"
    try:
        text = _read_capped(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        problems.warning(key, "cannot read DHCP leases file %s: %s", path, exc)
        return None
    now = time.time() if now is None else now
    addresses: set[str] = set()
    bad: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "duid":
            continue
        if len(fields) < 4 or not fields[0].isdigit() or len(fields[0]) > 12:
            bad.append(number)
            continue
        expiry = int(fields[0])
        if _MAC.match(fields[1]) and re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", fields[2]):
            if expiry == 0 or expiry > now:
                addresses.add(fields[2])
        elif ":" not in fields[2]:  # not an IPv6 lease either
            bad.append(number)
    if bad:
        problems.warning(key, "DHCP leases file %s: skipped %d malformed line(s), first at "
                         "line %d; is it really dnsmasq's leases file?", path, len(bad), bad[0])
    else:
        problems.resolved(key)
    return len(addresses)


def _read_gate_allowed(runner: Runner, problems: OnceLogger, table: str, set_name: str
                       ) -> tuple[int | None, float | None, bool]:
    """The number of clients in the captive gate's nftables allow set (``None`` without a
    gate), the seconds until its first element expires (None: none does), and whether it
    was read (False: a failure, reported once).

    Reads ``nft -j list set inet TABLE SET``; a missing table or set means
    this node runs no gate (not a problem).
    """
    key = "gate:nft"
    status, out, err = runner(["nft", "-j", "list", "set", "inet", table, set_name])
    if status == 127:
        return None, None, True
    if status != 0:
        if "No such file or directory" not in err:
            problems.warning(key, "cannot read the gate's allow set (nft exit %d): %s",
                             status, err.strip()[:200])
            return None, None, False
        return None, None, True
    try:
        for item in json.loads(out).get("nftables", []):
            found = item.get("set") if isinstance(item, dict) else None
            if isinstance(found, dict) and found.get("name") == set_name:
                elements = found.get("elem", [])
                if not isinstance(elements, list):
                    raise ValueError("'elem' is not a list")
                problems.resolved(key)
                expiries = [e["elem"]["expires"] for e in elements
                            if isinstance(e, dict) and isinstance(e.get("elem"), dict)
                            and isinstance(e["elem"].get("expires"), (int, float))]
                return len(elements), (min(expiries) if expiries else None), True
        raise ValueError(f"no set named {set_name!r} in the output")
    except (ValueError, AttributeError, TypeError) as exc:
        problems.warning(key, "nft printed JSON this agent does not understand: %s", exc)
        return None, None, False


#: From <linux/netlink.h> and <linux/netfilter/nf_tables.h>: ask nftables its generation.
_NETLINK_NETFILTER = 12
_NFT_MSG_GETGEN = (10 << 8) | 16  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN
_NFTA_GEN_ID = 1


def nftables_generation() -> int | None:
    """The nftables ruleset's generation in this network namespace: the kernel bumps it at
    every transaction (a set element added or removed by ``nft`` too). Read over netlink,
    without starting a process (about 0.1 ms); None where it cannot be read."""
    import socket
    import struct

    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                             _NETLINK_NETFILTER)
    except (OSError, AttributeError):
        return None
    try:
        sock.settimeout(1.0)
        sock.sendto(struct.pack("=IHHIIBBH", 20, _NFT_MSG_GETGEN, 1, 1, 0, 0, 0, 0), (0, 0))
        data = sock.recv(4096)
    except OSError:
        return None
    finally:
        sock.close()
    if len(data) < 20:
        return None
    length, kind = struct.unpack_from("=IH", data)
    if kind != (10 << 8) | 15:  # NFT_MSG_NEWGEN; an error answer (NLMSG_ERROR) is not
        return None
    offset = 20  # the netlink header, then nfgenmsg
    while offset + 4 <= min(length, len(data)):
        size, attribute = struct.unpack_from("=HH", data, offset)
        if size < 4:
            return None
        if attribute & 0x7FFF == _NFTA_GEN_ID and size >= 8:
            return int(struct.unpack_from(">I", data, offset + 4)[0])
        offset += (size + 3) & ~3
    return None


class GateAllowedCount:
    """The gate's allow-set count, with ``nft`` started only when it may have changed.

    Every health sample started ``nft`` (a process: a third of an idle lab agent's
    sample, docs/scale.md). The count changes only when a transaction changes the set
    (the gate's own, or anyone's ``nft``: the ruleset's generation moves,
    :func:`nftables_generation`) or when an element's timeout runs out (the soonest
    ``expires`` the last read gave). Otherwise the last count is the set's. Where the
    generation cannot be read, ``nft`` runs every time, as before.
    """

    def __init__(self, runner: Runner, generation: Callable[[], int | None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._runner = runner
        self._generation = generation
        self._clock = clock
        self._known: tuple[int, float, int | None] | None = None  # generation, until, count

    def __call__(self, problems: OnceLogger, table: str = "meshhub",
                 set_name: str = "allowed") -> int | None:
        """The allow set's size now (``None`` without a gate, or when it cannot be read)."""
        generation = self._generation()
        now = self._clock()
        known = self._known
        if generation is not None and known is not None and known[0] == generation \
                and now < known[1]:
            return known[2]
        count, expires, read = _read_gate_allowed(self._runner, problems, table, set_name)
        self._known = None
        if read and generation is not None:
            until = now + expires if expires is not None else float("inf")
            self._known = (generation, until, count)
        return count


#: eMMC "device life time estimate" codes: 0x01 = 0-10 % used ... 0x0A = 90-100 %,
#: 0x0B = beyond the estimated life time (JEDEC JESD84-B51, EXT_CSD 268/269).
_PRE_EOL = {1: "normal", 2: "warning", 3: "urgent"}


@frozen
class StorageWear:
    """What the card or eMMC says about its own wear; fields are ``None`` when not reported."""

    device: str
    life_used_a_ratio: float | None
    life_used_b_ratio: float | None
    pre_eol: str | None


def storage_wear(sys_root: Path, device: str, problems: OnceLogger) -> StorageWear | None:
    """Read ``block/DEVICE/device/{life_time,pre_eol_info}`` under ``sys_root``.

    eMMC modules report these; most SD cards do not, so ``None`` is normal.
    The life-time codes are turned into the upper bound of their range
    (code 0x03 = "20-30 % used" -> 0.3), which errs on the side of caution.
    """
    base = sys_root / "block" / device / "device"
    life_a = life_b = None
    pre_eol = None
    try:
        raw = (base / "life_time").read_text(encoding="ascii", errors="replace").split()
        if len(raw) == 2:
            life_a, life_b = (min(int(code, 16), 11) / 10 for code in raw)
        else:
            raise ValueError(f"expected two codes, found {raw[:4]!r}")
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        problems.warning(f"wear:{device}:life", "cannot read %s: %s", base / "life_time", exc)
    try:
        code = int((base / "pre_eol_info").read_text(encoding="ascii", errors="replace"), 16)
        pre_eol = _PRE_EOL.get(code, f"unknown ({code:#x})")
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        problems.warning(f"wear:{device}:eol", "cannot read %s: %s", base / "pre_eol_info", exc)
    if life_a is None and life_b is None and pre_eol is None:
        return None
    return StorageWear(device, life_a, life_b, pre_eol)


def block_device_of(partition: str) -> str:
    """The whole-disk name of a partition device: /dev/mmcblk0p2 -> mmcblk0, /dev/sda1 -> sda."""
    name = partition.rsplit("/", 1)[-1]
    if re.fullmatch(r"(mmcblk|nvme|loop)\S*p\d+", name):
        return re.sub(r"p\d+$", "", name)
    return re.sub(r"(?<=[a-z])\d+$", "", name)


def systemd_service_states(units: Sequence[str], runner: Runner,
                           run_dir: Path = Path("/run/systemd/system")) -> dict[str, str]:
    """``up``/``down`` for each systemd unit, or ``unknown`` on a machine without systemd.

    ``systemctl is-active`` prints one state per unit; ``active`` and
    ``reloading`` count as up, ``activating`` as unknown (starting), the rest
    (``inactive``, ``failed``...) as down.
    """
    if not units:
        return {}
    if not run_dir.is_dir():
        return dict.fromkeys(units, "unknown")
    _status, out, _err = runner(["systemctl", "is-active", *units])
    states = out.split()
    if len(states) != len(units):
        return dict.fromkeys(units, "unknown")
    mapping = {"active": "up", "reloading": "up", "activating": "unknown"}
    return {unit: mapping.get(state, "down") for unit, state in zip(units, states, strict=True)}
