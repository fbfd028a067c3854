"""A fair share of the uplink for every resident: CAKE on the uplink, both directions.

Rendered only on a node with ``clients.uplink_interface`` and a speed set
(``clients.uplink_upload_kbit`` / ``uplink_download_kbit``; 0 leaves that direction
alone). Upload: ``cake`` as the uplink's root qdisc with ``dual-srchost`` (fair first
between residents' devices, then between each device's flows) and ``nat`` (CAKE reads
the connection tracking table, so it sees the residents' own addresses behind the
masquerade). Download: the uplink's ingress is redirected to an ``ifb`` device whose
root is ``cake ... dual-dsthost nat ingress``. The bandwidth set must be a little below
the line's real speed, so that the queue forms here, where CAKE can be fair, and not in
the modem. CAKE is ``sch_cake`` (Linux 4.19+; Debian's and Raspberry Pi OS kernels have
it); ``act_mirred`` and ``ifb`` carry the download side.
"""

from __future__ import annotations

import shlex

from node.config import NodeConfig
from node.net._header import header

Command = tuple[str, ...]
#: The ifb device that carries the uplink's download direction through CAKE.
IFB = "ifb-mh0"


def shaping_commands(cfg: NodeConfig) -> list[Command]:
    """The ``tc``/``ip`` commands that put CAKE on the uplink (empty when off)."""
    uplink = cfg.clients.uplink_interface
    if not uplink:
        return []
    return cake_commands(uplink, int(cfg.clients.uplink_upload_kbit),
                         int(cfg.clients.uplink_download_kbit))


def cake_commands(uplink: str, up: int, down: int) -> list[Command]:
    """CAKE at ``up`` kbit/s on ``uplink``'s egress and ``down`` kbit/s on its ingress
    (through :data:`IFB`); a direction at 0 gets nothing. Shared by the rendered script
    and the agent, which keeps them applied (:mod:`node.mesh.shaping`)."""
    commands: list[Command] = []
    if up:
        commands.append(("tc", "qdisc", "replace", "dev", uplink, "root", "cake", "bandwidth",
                         f"{up}kbit", "besteffort", "dual-srchost", "nat"))
    if down:
        commands += [
            ("ip", "link", "add", IFB, "type", "ifb"),
            ("ip", "link", "set", IFB, "up"),
            ("tc", "qdisc", "replace", "dev", uplink, "handle", "ffff:", "ingress"),
            ("tc", "filter", "replace", "dev", uplink, "parent", "ffff:", "protocol", "all",
             "prio", "1", "handle", "1", "matchall",
             "action", "mirred", "egress", "redirect", "dev", IFB),
            ("tc", "qdisc", "replace", "dev", IFB, "root", "cake", "bandwidth", f"{down}kbit",
             "besteffort", "dual-dsthost", "nat", "ingress"),
        ]
    return commands


def render_shaping_script(cfg: NodeConfig) -> str:
    """A POSIX shell script running :func:`shaping_commands` (idempotent: ``replace``,
    and an existing ifb device is kept)."""
    lines = ["#!/bin/sh",
             header(cfg, "CAKE on the uplink: a fair share for every resident."),
             "set -eu"]
    for command in shaping_commands(cfg):
        text = shlex.join(command)
        if command[:3] == ("ip", "link", "add"):
            text = f"[ -e /sys/class/net/{IFB} ] || {text}"
        lines.append(text)
    return "\n".join(lines) + "\n"


def shaping_warnings(cfg: NodeConfig) -> list[str]:
    """What ``meshhub config check`` should point out about fairness (not errors)."""
    if not cfg.clients.uplink_interface:
        return []
    missing = [key for key in ("uplink_upload_kbit", "uplink_download_kbit")
               if not cfg.get(f"clients.{key}")]
    if not missing:
        return []
    verb = "are" if len(missing) > 1 else "is"
    return [f"clients.uplink_interface is {cfg.clients.uplink_interface!r} but "
            f"{' and '.join(f'clients.{k}' for k in missing)} {verb} 0: one resident's big "
            "download or upload can take the whole uplink (CAKE fairness is off in that "
            "direction); set the line's speed in kbit/s, a little below what it really gives"]
