"""dnsmasq's leases, told to the gate: an address belongs to the device it was leased to.

dnsmasq runs its ``dhcp-script`` (rendered as ``lease-hook`` by :mod:`node.net.plan`)
for every lease it grants, renews (``script-on-renewal``), finds in its lease file at
start, or ends. The hook is this module::

    python -m node.gate.leases --socket /run/meshhub/gate.sock add 02:00:00:00:00:50 10.64.7.50

It reports the event on the gate's socket (``lease``/``release``, see
:mod:`node.gate.protocol`); the gate puts ``address . MAC`` in the ``leased`` sets of
the nftables gate, where it decides whose ARP and IPv4 are believed (see
:mod:`node.net.render_nftables`). The hook never fails dnsmasq: a problem is one line on
stderr (dnsmasq logs it) and exit status 0.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Seconds the hook waits for the gate (the gate answers in milliseconds).
HOOK_TIMEOUT_SECONDS = 3.0
#: Lease length assumed when dnsmasq gives none (its infinite leases).
DEFAULT_LEASE_SECONDS = 86400


def read_lease_file(path: Path, now: float | None = None) -> list[tuple[str, str, int]]:
    """The unexpired leases of a dnsmasq lease file as ``(ip, mac, seconds left)``.

    Lines are ``EXPIRY MAC IP NAME CLIENT-ID`` (``EXPIRY`` 0: never); IPv6 lines
    (``duid``) and damaged lines are skipped. A missing file is no leases.
    """
    now = time.time() if now is None else now
    try:
        lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    leases = []
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or not fields[0].isdigit() or fields[2].count(".") != 3:
            continue
        expiry = int(fields[0])
        left = DEFAULT_LEASE_SECONDS if expiry == 0 else int(expiry - now)
        if left > 0:
            leases.append((fields[2], fields[1], left))
    return leases


def event_request(action: str, mac: str, ip: str, environ: dict[str, str]
                  ) -> dict[str, object] | None:
    """The gate request for one dnsmasq event, or ``None`` for events the gate ignores.

    ``add``/``old`` (granted, renewed or found at start) become ``lease`` with the
    seconds left (``DNSMASQ_TIME_REMAINING``, else ``DNSMASQ_LEASE_EXPIRES``);
    ``del`` becomes ``release``; anything else (``init``, ``tftp``, ``arp`` ...) is
    not about a lease.
    """
    if action == "del":
        return {"op": "release", "ip": ip, "mac": mac}
    if action not in ("add", "old"):
        return None
    seconds = DEFAULT_LEASE_SECONDS
    remaining, expires = environ.get("DNSMASQ_TIME_REMAINING"), environ.get(
        "DNSMASQ_LEASE_EXPIRES")
    if remaining and remaining.isdigit():
        seconds = int(remaining)
    elif expires and expires.isdigit() and int(expires) > 0:
        seconds = int(expires) - int(time.time())
    return {"op": "lease", "ip": ip, "mac": mac, "seconds": max(1, seconds)}


def report(socket_path: Path, request: dict[str, object],
           timeout: float = HOOK_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Send one request line to the gate and return its answer (raises ``OSError``)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        sock.sendall(json.dumps(request, separators=(",", ":")).encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while not reply.endswith(b"\n") and len(reply) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    answer = json.loads(reply or b"{}")
    return answer if isinstance(answer, dict) else {}


def main(argv: Sequence[str] | None = None) -> int:
    """dnsmasq's ``dhcp-script``: report the event given in ``argv`` to the gate."""
    import argparse  # here: the agent imports this module and never parses a command line

    parser = argparse.ArgumentParser(prog="meshhub-lease-hook",
                                     description="Report a dnsmasq lease event to the gate.")
    parser.add_argument("--socket", required=True, type=Path, help="the gate's socket")
    parser.add_argument("action")
    parser.add_argument("mac")
    parser.add_argument("ip")
    parser.add_argument("rest", nargs="*", help="host name (ignored)")
    args = parser.parse_args(argv)
    request = event_request(args.action, args.mac, args.ip, dict(os.environ))
    if request is None:
        return 0
    try:
        answer = report(args.socket, request)
    except (OSError, ValueError) as exc:
        print(f"meshhub lease hook: the gate at {args.socket} did not take "
              f"{args.action} {args.ip} {args.mac}: {exc}", file=sys.stderr)
        return 0
    if not answer.get("ok"):
        print(f"meshhub lease hook: the gate refused {args.action} {args.ip} {args.mac}: "
              f"{answer.get('error')}: {answer.get('message')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
