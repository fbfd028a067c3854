"""What the portal knows about the device it is talking to: let through or not.

The portal asks the gate (``node.gate.GateClient`` on ``gate.socket``). Three cases
besides a plain answer:

* **no gate on this computer** (no socket: ``make run`` on a laptop): nothing holds
  anyone back, so every device counts as let through and the pages say so;
* **the gate does not answer** (the agent restarting, or too busy to answer within
  the client's timeout): a device the gate let through within the last
  :data:`REMEMBER_SECONDS` keeps that answer (:class:`GateMemory`: an accepted
  phone's next probe must not bring the sign-in sheet back because the gate was
  slow once; the gate's nftables set, not this answer, decides what passes);
  any other device is kept at the welcome page (a probe never "succeeds" by
  accident) and Connect asks to retry;
* **not a resident's address** (loopback, the mesh): such requests never crossed the
  gate, so nothing holds them back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

from flask import Flask, current_app, request

from node.config import NodeConfig
from node.gate import Gate, GateClient, GateError, GateStatus, GateUnavailable, NoGate

log = logging.getLogger(__name__)

#: ``app.config`` key: a ready gate client (made on first use; a test may put its own).
GATE_CLIENT_KEY = "CAPTIVE_GATE_CLIENT"
#: ``app.extensions`` key: the app's :class:`GateMemory`.
GATE_MEMORY_KEY = "meshhub.captive.gate_memory"
#: How long the gate's "let through" for a device stands in when the gate does not answer.
REMEMBER_SECONDS = 60.0
#: Devices remembered at most (the least recently asked about are forgotten first).
REMEMBER_DEVICES = 1024


@dataclass(frozen=True)
class ClientState:
    """One device as the captive pages see it.

    ``gate`` is ``present``, ``absent`` (no gate on this computer), ``unavailable``
    (not answering) or ``ungated`` (an address the gate does not hold back).
    ``broadcast`` is the id of the emergency notice the gate holds everyone back for,
    until this device has read it (``broadcast_read``).
    """

    allowed: bool
    seconds_remaining: int | None = None
    mode: str = "portal"
    gate: str = "present"
    broadcast: str | None = None
    broadcast_read: bool = False

    @property
    def unread(self) -> str | None:
        """The emergency notice this device must see first, if any."""
        return self.broadcast if self.broadcast and not self.broadcast_read else None

    @property
    def through(self) -> bool:
        """Whether the device is let through now (accepted, no unread emergency notice)."""
        return self.allowed and self.unread is None


def gate_client(app: Flask | None = None) -> Gate:
    """The app's gate client (one per app)."""
    app = app or current_app
    client: Gate | None = app.config.get(GATE_CLIENT_KEY)
    if client is None:
        config: NodeConfig = app.config["NODE_CONFIG"]
        client = GateClient(config.gate.socket)
        app.config[GATE_CLIENT_KEY] = client
    return client


def client_ip() -> str:
    """The requesting device's address (ProxyFix has applied X-Forwarded-For if enabled)."""
    return request.remote_addr or ""


def from_status(status: GateStatus) -> ClientState:
    """The state for a gate's answer."""
    return ClientState(status.allowed, status.seconds_remaining, status.mode, "present",
                       status.broadcast, status.broadcast_read)


class GateMemory:
    """The gate's last "let through" per device address, for a gate that is slow once.

    Only answers that let a device through are kept, each for :data:`REMEMBER_SECONDS`
    and never past the time the gate gave it; at most :data:`REMEMBER_DEVICES`.
    """

    def __init__(self, seconds: float = REMEMBER_SECONDS,
                 devices: int = REMEMBER_DEVICES) -> None:
        self.seconds, self.devices = seconds, devices
        self._lock = threading.Lock()
        self._answers: OrderedDict[str, tuple[float, GateStatus]] = OrderedDict()

    def keep(self, ip: str, status: GateStatus) -> None:
        """Note the gate's answer for ``ip`` (forgetting it if the device is held back)."""
        with self._lock:
            if not status.allowed:
                self._answers.pop(ip, None)
                return
            self._answers[ip] = (time.monotonic(), status)
            self._answers.move_to_end(ip)
            while len(self._answers) > self.devices:
                self._answers.popitem(last=False)

    def recall(self, ip: str) -> GateStatus | None:
        """The gate's "let through" for ``ip`` if it still stands, its time left counted
        down; None when there is none."""
        with self._lock:
            kept = self._answers.get(ip)
        if kept is None:
            return None
        age = time.monotonic() - kept[0]
        status = kept[1]
        if age > self.seconds or (status.seconds_remaining is not None
                                  and age >= status.seconds_remaining):
            return None
        if status.seconds_remaining is None:
            return status
        return replace(status, seconds_remaining=int(status.seconds_remaining - age))


def gate_memory(app: Flask | None = None) -> GateMemory:
    """The app's :class:`GateMemory` (one per app)."""
    app = app or current_app
    memory: GateMemory | None = app.extensions.get(GATE_MEMORY_KEY)
    if memory is None:
        memory = app.extensions.setdefault(GATE_MEMORY_KEY, GateMemory())
    return memory


def client_state() -> ClientState:
    """Ask the gate about the requesting device (see the module docstring)."""
    ip = client_ip()
    try:
        status = gate_client().status(ip)
    except NoGate:
        return ClientState(True, None, "open", "absent")
    except GateUnavailable as exc:
        remembered = gate_memory().recall(ip)
        if remembered is not None:
            log.warning("captive: %s; the device keeps the gate's answer of a moment ago "
                        "(let through)", exc)
            return from_status(remembered)
        log.warning("captive: %s; the device is kept at the welcome page", exc)
        return ClientState(False, None, "portal", "unavailable")
    except GateError as exc:
        if exc.code in ("not-a-client", "bad-request"):
            return ClientState(True, None, "portal", "ungated")
        log.warning("captive: the gate answered %s; the device is kept at the welcome page",
                    exc)
        return ClientState(False, None, "portal", "present")
    gate_memory().keep(ip, status)
    return from_status(status)


def portal_url(path: str) -> str:
    """An absolute URL on the portal's address (``http://10.64.7.1/welcome``).

    A phone's sign-in sheet may have arrived under any host name; the welcome page
    must be on the node's own address. Without a gate (a laptop demo), the URL the
    browser used is kept.
    """
    if not gate_client().present:
        return request.host_url.rstrip("/") + path
    app = current_app
    base = app.extensions.get("meshhub.captive.base")
    if base is None:
        from node.errors import ConfigError
        from node.net import address_plan

        try:
            base = f"http://{address_plan(app.config['NODE_CONFIG']).portal_address}"
        except (ConfigError, ValueError):
            base = request.host_url.rstrip("/")
        app.extensions["meshhub.captive.base"] = base
    return base + path
