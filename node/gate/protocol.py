"""The gate's control protocol: one JSON object per line over a local Unix socket.

The portal (unprivileged) asks the gate (root, inside the agent) three things::

    {"op": "allow",  "ip": "10.64.7.50"}   let this device through (its MAC is looked up)
    {"op": "status", "ip": "10.64.7.50"}   is it let through, and for how long?
    {"op": "remove", "ip": "10.64.7.50"}   stop letting it through
    {"op": "read",   "ip": "10.64.7.50"}   its resident read the emergency notice

dnsmasq's lease events (:mod:`node.gate.leases`, root or the agent's user only) tell
it which device holds which address, so that no other device can claim it::

    {"op": "lease",   "ip": "10.64.7.50", "mac": "02:00:00:00:00:50", "seconds": 3600}
    {"op": "release", "ip": "10.64.7.50", "mac": "02:00:00:00:00:50"}

and gets back one line::

    {"ok": true, "ip": "10.64.7.50", "mac": "02:00:00:00:00:50", "allowed": true,
     "seconds_remaining": 86399, "mode": "portal"}
    {..., "broadcast": "<notice id>", "broadcast_read": false}   (during a broadcast)
    {"ok": false, "error": "bad-request", "message": "..."}

Parsing is strict (see :func:`parse_request`): a request line is at most
:data:`MAX_REQUEST_BYTES`, an object with exactly the keys ``op`` and ``ip`` (and, for
``lease``/``release``, ``mac`` and ``seconds``/``mac``), ``ip`` an IPv4 address in
dotted-quad form. ``docs/captive.md`` is the reference.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from node.errors import NodeError
from node.frozen import frozen

#: Longest request line accepted, newline included (a request is ~40 bytes).
MAX_REQUEST_BYTES = 256
#: Longest response line a client reads (a response is ~150 bytes).
MAX_RESPONSE_BYTES = 4096
#: The operations the socket answers.
OPERATIONS = ("allow", "status", "remove", "lease", "release", "read")
#: Operations only root and the agent's own user may ask for (dnsmasq's lease events).
LEASE_OPERATIONS = ("lease", "release")
#: The keys each operation's request has, exactly.
REQUEST_KEYS = {"allow": {"op", "ip"}, "status": {"op", "ip"}, "remove": {"op", "ip"},
                "read": {"op", "ip"},
                "lease": {"op", "ip", "mac", "seconds"}, "release": {"op", "ip", "mac"}}
#: Longest lease the gate records (dnsmasq's infinite lease is recorded as this).
MAX_LEASE_SECONDS = 366 * 86400
#: The gate modes (``gate.mode`` in node.toml, or the organisers' local switch).
MODES = ("portal", "open", "forced")

#: Error codes a response may carry (``{"ok": false, "error": CODE, "message": ...}``).
ERRORS = {
    "bad-request": "the request line is not a valid request",
    "not-a-client": "the address is not in this node's client subnet",
    "unknown-device": "the node has not seen a device with this address on its access point",
    "gate-failed": "nftables refused or failed the change",
    "forbidden": "this user may not use the gate's socket",
}


class GateError(NodeError, RuntimeError):
    """The gate could not do what was asked; ``code`` is one of :data:`ERRORS`."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class GateUnavailable(NodeError, ConnectionError):
    """The gate's socket exists but did not answer (the agent is down or busy)."""


class NoGate(GateUnavailable, FileNotFoundError):
    """There is no gate on this computer (no socket): a laptop demo, not a node."""


@frozen
class Request:
    """One parsed request (``mac`` and ``seconds`` only for lease events)."""

    op: str
    ip: str
    mac: str | None = None
    seconds: int | None = None


@frozen
class LeaseStatus:
    """The answer to a lease event: the address is (or no longer is) bound to the MAC."""

    ip: str
    mac: str
    leased: bool
    seconds_remaining: int | None

    def to_dict(self) -> dict[str, Any]:
        """The response object (with ``ok: true``)."""
        return {"ok": True, "ip": self.ip, "mac": self.mac, "leased": self.leased,
                "seconds_remaining": self.seconds_remaining}


@frozen
class GateStatus:
    """Whether one device is let through, and for how long.

    ``seconds_remaining`` is ``None`` when nothing expires (an open network) or the
    device is not allowed; ``mac`` is ``None`` when the node has not seen the device.
    ``broadcast`` is the notice id of the emergency broadcast in force (``None``: none);
    while it is, a device is let through only once ``broadcast_read`` (its resident
    pressed "I have read this"), whatever ``allowed`` says (:attr:`through`).
    """

    ip: str
    mac: str | None
    allowed: bool
    seconds_remaining: int | None
    mode: str = "portal"
    broadcast: str | None = None
    broadcast_read: bool = False

    @property
    def through(self) -> bool:
        """Whether the device's traffic passes now (accepted, and any broadcast read)."""
        return self.allowed and (self.broadcast is None or self.broadcast_read)

    def to_dict(self) -> dict[str, Any]:
        """The response object (with ``ok: true``)."""
        out: dict[str, Any] = {"ok": True, "ip": self.ip, "mac": self.mac,
                               "allowed": self.allowed,
                               "seconds_remaining": self.seconds_remaining, "mode": self.mode}
        if self.broadcast is not None:
            out.update(broadcast=self.broadcast, broadcast_read=self.broadcast_read)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateStatus:
        """Read a successful response; raises :class:`GateError` when it is malformed."""
        try:
            seconds = data.get("seconds_remaining")
            broadcast = data.get("broadcast")
            status = cls(ip=str(data["ip"]), mac=data.get("mac"), allowed=bool(data["allowed"]),
                         seconds_remaining=None if seconds is None else int(seconds),
                         mode=str(data.get("mode", "portal")),
                         broadcast=None if broadcast is None else str(broadcast),
                         broadcast_read=bool(data.get("broadcast_read", False)))
        except (KeyError, TypeError, ValueError) as exc:
            raise GateError("bad-request", f"malformed response from the gate: {exc}") from None
        if status.mode not in MODES:
            raise GateError("bad-request", f"unknown mode in response: {status.mode!r}")
        return status


def parse_ipv4(text: object) -> str:
    """``text`` as a canonical dotted-quad IPv4 address, or :class:`GateError`."""
    if not isinstance(text, str) or len(text) > 15:
        raise GateError("bad-request", "'ip' must be an IPv4 address such as 10.64.7.50")
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise GateError("bad-request", f"'ip' is not an IPv4 address: {text!r}") from None
    return str(address)


def parse_mac(text: object) -> str:
    """``text`` as a lower-case colon-separated Ethernet MAC, or :class:`GateError`."""
    if not isinstance(text, str) or not re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}",
                                                     text):
        raise GateError("bad-request", "'mac' must be an Ethernet address such as "
                        "02:00:00:00:00:50")
    return text.lower()


def parse_request(line: bytes) -> Request:
    """Parse one request line strictly; raises :class:`GateError` (``bad-request``)."""
    if len(line) > MAX_REQUEST_BYTES:
        raise GateError("bad-request", f"request longer than {MAX_REQUEST_BYTES} bytes")
    try:
        data = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GateError("bad-request", f"not a JSON line: {exc}") from None
    if not isinstance(data, dict):
        raise GateError("bad-request", "a request is a JSON object")
    op = data.get("op")
    if not isinstance(op, str) or op not in OPERATIONS:
        raise GateError("bad-request", f"'op' must be one of {', '.join(OPERATIONS)}")
    if set(data) != REQUEST_KEYS[op]:
        raise GateError("bad-request", f"a {op!r} request has exactly the keys "
                        + ", ".join(sorted(map(repr, REQUEST_KEYS[op]))) + "; found "
                        + ", ".join(sorted(map(repr, data))))
    ip = parse_ipv4(data["ip"])
    if op not in LEASE_OPERATIONS:
        return Request(op=op, ip=ip)
    seconds = data.get("seconds")
    if op == "lease" and (isinstance(seconds, bool) or not isinstance(seconds, int)
                          or not 1 <= seconds <= MAX_LEASE_SECONDS):
        raise GateError("bad-request", f"'seconds' must be a whole number from 1 to "
                        f"{MAX_LEASE_SECONDS}")
    return Request(op=op, ip=ip, mac=parse_mac(data["mac"]), seconds=seconds)


def encode(obj: dict[str, Any]) -> bytes:
    """One protocol line (compact JSON and a newline)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"


def error_response(error: GateError) -> dict[str, Any]:
    """The response object for ``error``."""
    return {"ok": False, "error": error.code, "message": error.message}
