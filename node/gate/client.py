"""The portal's side of the gate's socket: short timeouts, clear failures, never a hang.

:class:`NoGate` means there is no socket at all (``make run`` on a laptop: this
computer has no gate, so the demo treats everyone as let through);
:class:`GateUnavailable` means the socket is there but nobody answered (the agent is
restarting): the portal then keeps devices at the welcome page, never lets them
"succeed" by accident.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path
from typing import Protocol

from node.gate.protocol import (
    MAX_RESPONSE_BYTES,
    GateError,
    GateStatus,
    GateUnavailable,
    NoGate,
    encode,
)

#: Seconds the portal waits for the gate, per request (the gate answers in milliseconds).
CLIENT_TIMEOUT_SECONDS = 2.0
#: An answer slower than this is logged: a gate near the timeout is seen before phones
#: are answered as held back (suspected in the radio lab under TCG, not yet shown).
SLOW_ANSWER_SECONDS = 1.0

log = logging.getLogger(__name__)


class Gate(Protocol):
    """What the portal asks of the gate: :class:`GateClient` is the one implementation.

    Failures are :class:`NoGate` (no gate on this computer), :class:`GateUnavailable`
    (it did not answer) and :class:`GateError` (it answered no, with a code).
    """

    @property
    def present(self) -> bool:
        """Whether this computer has a gate at all."""
        ...

    def allow(self, ip: str) -> GateStatus:
        """Let the device at ``ip`` through."""
        ...

    def status(self, ip: str) -> GateStatus:
        """Whether the device at ``ip`` is let through, and for how long."""
        ...

    def read(self, ip: str) -> GateStatus:
        """The device at ``ip`` read the emergency notice: let it through again if accepted."""
        ...


class GateClient:
    """Asks the gate over its Unix socket at ``path`` (one connection per request)."""

    def __init__(self, path: str | Path, timeout: float = CLIENT_TIMEOUT_SECONDS) -> None:
        self.path = Path(path)
        self.timeout = timeout

    @property
    def present(self) -> bool:
        """Whether this computer has a gate socket at all."""
        return self.path.exists()

    def allow(self, ip: str) -> GateStatus:
        """Let the device at ``ip`` through (the gate binds it to the MAC it sees)."""
        return self._ask("allow", ip)

    def status(self, ip: str) -> GateStatus:
        """Whether the device at ``ip`` is let through, and for how long."""
        return self._ask("status", ip)

    def remove(self, ip: str) -> GateStatus:
        """Stop letting the device at ``ip`` through."""
        return self._ask("remove", ip)

    def read(self, ip: str) -> GateStatus:
        """The device at ``ip`` read the emergency notice (node.gate.broadcast)."""
        return self._ask("read", ip)

    def _ask(self, op: str, ip: str) -> GateStatus:
        if not self.present:
            raise NoGate(f"no gate on this computer ({self.path} does not exist)")
        started = time.monotonic()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.path))
                sock.sendall(encode({"op": op, "ip": ip}))
                sock.shutdown(socket.SHUT_WR)
                reply = b""
                while not reply.endswith(b"\n") and len(reply) <= MAX_RESPONSE_BYTES:
                    chunk = sock.recv(MAX_RESPONSE_BYTES)
                    if not chunk:
                        break
                    reply += chunk
        except FileNotFoundError:
            raise NoGate(f"no gate on this computer ({self.path} does not exist)") from None
        except OSError as exc:  # refused, timed out, permission denied
            raise GateUnavailable(f"the gate at {self.path} did not answer: {exc}") from None
        took = time.monotonic() - started
        if took > SLOW_ANSWER_SECONDS:
            log.warning("the gate took %.1f s to answer %r", took, op)
        if not reply.endswith(b"\n") or len(reply) > MAX_RESPONSE_BYTES:
            raise GateUnavailable(f"the gate at {self.path} sent an incomplete answer")
        try:
            data = json.loads(reply)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise GateUnavailable(f"the gate at {self.path} sent something unreadable") from None
        if not isinstance(data, dict):
            raise GateUnavailable(f"the gate at {self.path} sent something unreadable")
        if not data.get("ok"):
            raise GateError(str(data.get("error", "gate-failed")), str(data.get("message", "")))
        return GateStatus.from_dict(data)
