"""The captive gate's control: who is let through, asked over a local Unix socket.

The nftables ruleset itself is rendered by :mod:`node.net.render_nftables` and applied
by ``meshhub net apply``; this package changes the *elements* of its allow set at run
time. Others should use:

* :class:`GateClient` (the portal): ``allow(ip)``, ``status(ip)``, ``remove(ip)``; the
  portal types it as :class:`Gate`, the part it uses;
* :class:`GateManager` (root: the agent, ``meshhub gate``): the same on ``nft`` directly;
* :class:`GateService` (the agent's component: socket + organisers' mode switch);
* :func:`effective_mode`, :func:`read_switch`, :func:`write_switch` (the local switch).

The protocol is documented in ``docs/captive.md``.
"""

from __future__ import annotations

from node.gate.client import Gate, GateClient
from node.gate.manager import Element, GateManager
from node.gate.mode import (
           MODE_FILE,
           ModeSwitch,
           effective_mode,
           mode_file,
           read_switch,
           write_switch,
)
from node.gate.protocol import MODES, GateError, GateStatus, GateUnavailable, NoGate

__all__ = ["MODES", "MODE_FILE", "Element", "Gate", "GateClient", "GateError", "GateManager",
           "GateStatus", "GateUnavailable", "ModeSwitch", "NoGate", "effective_mode",
           "mode_file", "read_switch", "write_switch"]
