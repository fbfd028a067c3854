"""``meshhub net up``: this node's links, brought up at every boot (``meshhub-net.service``).

A node's interfaces are not persistent: the mesh address on ``lo``, the mesh
radio's interface (802.11s or IBSS), the access point's interface and its
address are all gone after a reboot. The agent, which is not root, needs them
before it starts: it listens on the mesh address, babeld runs on the mesh
interface, dnsmasq and hostapd on the access point. So a root oneshot runs
these commands, from the same plan as ``meshhub net apply``
(:func:`node.net.build_plan`), before the agent. It starts no daemon and
loads no gate: the agent loads the gate before it opens the access point.

Idempotent: an interface that exists is not added again, a mesh that is
already joined is left joined, addresses are set with ``replace``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from node.config import NodeConfig
from node.errors import NodeError
from node.net.addressing import AddressPlan
from node.net.render_mesh import mesh_commands

Runner = Callable[[Sequence[str], "str | None"], tuple[int, str, str]]
SYS_NET = Path("/sys/class/net")


class LinkError(NodeError, RuntimeError):
    """A link could not be brought up; the message names the command and its output."""


def link_commands(cfg: NodeConfig, addresses: AddressPlan) -> list[tuple[str, ...]]:
    """The commands of the network plan that set up links and addresses, in order."""
    ap = cfg.wifi.ap_interface
    return [*mesh_commands(cfg, addresses),
            ("ip", "link", "set", ap, "up"),
            ("ip", "address", "replace", addresses.portal_interface_address, "dev", ap)]


def _interface(command: Sequence[str]) -> str | None:
    """The interface a command acts on (``None`` for ``lo`` and radio-level commands)."""
    if command[:3] == ("ip", "link", "set") or command[:2] == ("iw", "dev"):
        return command[3] if command[0] == "ip" else command[2]
    if command[:2] == ("ip", "address"):
        return None if command[-1] == "lo" else command[-1]
    return None


def bring_up(cfg: NodeConfig, addresses: AddressPlan, run: Runner,
             sys_net: Path = SYS_NET) -> list[str]:
    """Run :func:`link_commands`; return what was done (skipped steps say why).

    An interface that is not there (a node without its Wi-Fi dongle still
    serves on its other links) skips the steps on it, reported; every other
    step must succeed or :class:`LinkError` says which failed and why.
    """
    done: list[str] = []
    for command in link_commands(cfg, addresses):
        text = " ".join(command)
        if command[:2] == ("iw", "phy"):
            phy, name = command[2], command[5]
            if (sys_net / name).exists():
                done.append(f"{text}: skipped ({name} exists)")
                continue
            if not (sys_net.parent / "ieee80211" / phy).exists():
                done.append(f"{text}: skipped (no radio {phy})")
                continue
        elif (iface := _interface(command)) and not (sys_net / iface).exists():
            done.append(f"{text}: skipped (no {iface})")
            continue
        code, out, err = run(command, None)
        if code != 0 and command[:2] == ("iw", "dev") and "already" in (err + out).lower():
            done.append(f"{text}: already joined")
            continue
        if code != 0:
            raise LinkError(f"'{text}' failed (exit {code}): {(err or out).strip()}")
        done.append(text)
    return done
