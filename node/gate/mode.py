"""The gate's mode, and the organisers' local switch that overrides ``gate.mode``.

* ``portal`` (default): a device reaches only DHCP, DNS and the portal until its
  resident accepts the house rules; then it is let through for ``gate.allow_minutes``.
  Accepted devices are remembered across a re-apply of the gate and a restart of the agent.
* ``open``: nobody is asked; every device on the access point is let through as if it
  had accepted. The other protections (DNS only to the node, no IPv6, no traffic between
  residents, no management ports) stay.
* ``forced``: like ``portal``, but nobody is remembered: the allow set is emptied when
  this mode takes effect and whenever the gate is applied again, so every device meets
  the welcome page again (e.g. after the house rules changed).

An organiser (admin) can switch the mode of *one node* from its admin page; the choice is
a local file in the node's data directory (:data:`MODE_FILE`), not replicated to other
nodes and not signed. The agent watches it and re-applies the gate; deleting the file
returns to ``gate.mode`` from ``node.toml``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from node.atomic import atomic_write
from node.config import NodeConfig
from node.errors import ConfigError
from node.frozen import frozen
from node.gate.protocol import MODES

#: The organisers' switch, inside ``node.data_dir``.
MODE_FILE = "gate-mode.json"


@frozen
class ModeSwitch:
    """The local switch as stored: the mode, who set it and when (Unix seconds)."""

    mode: str
    set_by: str
    set_at: int


def mode_file(cfg: NodeConfig) -> Path:
    """Where this node keeps the organisers' switch."""
    return cfg.data_dir / MODE_FILE


def read_switch(path: Path) -> ModeSwitch | None:
    """The switch stored at ``path``, or ``None`` when there is none.

    A damaged file raises :class:`ConfigError` naming it (the agent logs it and keeps
    ``gate.mode``); it never silently opens the network.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the gate switch ({exc})"]) from None
    try:
        data = json.loads(raw)
        switch = ModeSwitch(mode=str(data["mode"]), set_by=str(data.get("set_by", "")),
                            set_at=int(data.get("set_at", 0)))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError([f"{path}: not a gate switch ({exc}); delete it to use "
                           "gate.mode from node.toml"]) from None
    if switch.mode not in MODES:
        raise ConfigError([f"{path}: mode {switch.mode!r} is not one of {', '.join(MODES)}"])
    return switch


def write_switch(path: Path, mode: str | None, set_by: str) -> None:
    """Store the switch atomically; ``mode=None`` removes it (back to ``gate.mode``)."""
    if mode is None:
        path.unlink(missing_ok=True)
        return
    if mode not in MODES:
        raise ValueError(f"unknown gate mode {mode!r}")
    atomic_write(path, json.dumps({"mode": mode, "set_by": set_by,
                                   "set_at": int(time.time())}) + "\n", mode=0o644)


def effective_mode(cfg: NodeConfig) -> str:
    """The mode in force: the organisers' switch if present and valid, else ``gate.mode``."""
    try:
        switch = read_switch(mode_file(cfg))
    except ConfigError:
        switch = None
    return switch.mode if switch else str(cfg.gate.mode)


def with_mode(cfg: NodeConfig, mode: str) -> NodeConfig:
    """A copy of ``cfg`` whose ``gate.mode`` is ``mode`` (to render the gate with it)."""
    values = dict(cfg.values)
    values["gate.mode"] = mode
    return NodeConfig(values=values, path=cfg.path, explicit=cfg.explicit)
