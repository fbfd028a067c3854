"""Lossy and slow links in the lab: an nftables ``netdev`` table per node, at the very
first hook, and ``netem``.

On simulated radios every radio hears every other (one shared medium, no distance);
who peers with whom, and so who hears whom, is :mod:`node.lab.peering`'s. Here a
degraded link drops a share of the frames arriving from its other end at random
(``numgen random``), in both directions, before babeld or anything else sees them. On
veth links (the lab without radios) the same table drops a share of what arrives on a
degraded link's interface. A delay on the air (:func:`render_delays`) holds the frames
a node sends to one neighbour in a ``netem``.

Rendering is pure (:func:`render_air`); :func:`apply_air` replaces the whole table in
one ``nft -f`` transaction inside the node's namespace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from node.lab.netns import LabError, run

TABLE = "mhlab"
#: Before everything else on the interface (conntrack, the gate, babeld's socket).
PRIORITY = -500
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _chain_name(device: str) -> str:
    return "in_" + re.sub(r"[^A-Za-z0-9_]", "_", device)


def _check_mac(mac: str) -> str:
    if not _MAC.match(mac):
        raise LabError(f"{mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return mac


def render_air(*, radio_device: str | None = None,
               radio_loss: Mapping[str, int] | None = None,
               device_loss: Mapping[str, int] | None = None) -> str:
    """The ``nft -f`` text of one node's air table.

    ``radio_device`` (``mesh0``): drop that share (percent) of the frames from each MAC
    of ``radio_loss``. ``device_loss``: for each wired (veth) interface, the percentage
    of arriving frames to drop.
    """
    for percent in [*(radio_loss or {}).values(), *(device_loss or {}).values()]:
        if not 0 <= percent <= 100:
            raise LabError(f"--loss: {percent} is not a percentage (0-100)")
    lines = [f"table netdev {TABLE}", f"delete table netdev {TABLE}", f"table netdev {TABLE} {{"]
    lossy = {_check_mac(mac): percent for mac, percent in (radio_loss or {}).items() if percent}
    if radio_device and lossy:
        lines += _chain(radio_device, [f"ether saddr {mac} {_share(percent)}counter drop"
                                       for mac, percent in sorted(lossy.items())])
    for device, percent in sorted((device_loss or {}).items()):
        if percent:
            lines += _chain(device, [f"{_share(percent)}counter drop"])
    lines.append("}")
    return "\n".join(lines) + "\n"


def _share(percent: int) -> str:
    """The match for ``percent`` of the packets (nothing: all of them)."""
    return "" if percent >= 100 else f"numgen random mod 100 < {percent} "


def _chain(device: str, rules: list[str]) -> list[str]:
    return [f"    chain {_chain_name(device)} {{",
            f'        type filter hook ingress device "{device}" priority {PRIORITY}; '
            "policy accept;",
            *(f"        {rule}" for rule in rules),
            "    }"]


def apply_air(namespace: str, text: str) -> None:
    """Load ``text`` (from :func:`render_air`) inside ``namespace``, replacing the table."""
    run("ip", "netns", "exec", namespace, "nft", "-f", "-", stdin=text)


#: ``prio``'s own three bands (the default priomap) before the lab's delayed ones.
_PRIO_BANDS = 3
#: ``prio`` takes at most 16 bands: 13 delayed neighbours per node.
MAX_DELAYED = 16 - _PRIO_BANDS
#: ``prio``'s default priority-to-band map: every frame not delayed goes where it would.
_PRIOMAP = ("1", "2", "2", "2", "1", "2", "0", "0", "1", "1", "1", "1", "1", "1", "1", "1")


def render_delays(device: str, delays: Mapping[str, float]) -> list[list[str]]:
    """The ``tc`` commands (arguments after ``tc``) that delay the frames ``device`` sends
    to each MAC of ``delays`` by its milliseconds: a ``prio`` root qdisc with one band
    more per MAC, a ``netem`` in that band, and a ``flower`` filter on the destination
    MAC sending the neighbour's frames there. On a shared medium this slows one
    neighbour alone, which a ``netem`` on the whole interface could not. The commands
    start by removing any root qdisc; no delays: only that."""
    chosen = {_check_mac(mac): ms for mac, ms in sorted(delays.items()) if ms}
    if len(chosen) > MAX_DELAYED:
        raise LabError(f"--delay: at most {MAX_DELAYED} delayed neighbours per node")
    for ms in chosen.values():
        if not 0 < ms <= 10_000:
            raise LabError(f"--delay: {ms:g} ms is not between 0 and 10000")
    commands = [["qdisc", "del", "dev", device, "root"]]
    if not chosen:
        return commands
    bands = _PRIO_BANDS + len(chosen)
    commands.append(["qdisc", "add", "dev", device, "root", "handle", "1:", "prio", "bands",
                     str(bands), "priomap", *_PRIOMAP])
    for band, (mac, ms) in enumerate(chosen.items(), start=_PRIO_BANDS + 1):
        commands.append(["qdisc", "add", "dev", device, "parent", f"1:{band:x}", "handle",
                         f"{band:x}0:", "netem", "delay", f"{ms:g}ms"])
        commands.append(["filter", "add", "dev", device, "parent", "1:", "protocol", "all",
                         "prio", "1", "flower", "dst_mac", mac, "classid", f"1:{band:x}"])
    return commands


def apply_delays(namespace: str, device: str, delays: Mapping[str, float]) -> None:
    """Run :func:`render_delays`'s commands inside ``namespace``."""
    first, *rest = render_delays(device, delays)
    run("ip", "netns", "exec", namespace, "tc", *first, check=False)  # none there: fine
    for argv in rest:
        result = run("ip", "netns", "exec", namespace, "tc", *argv, check=False)
        if result.returncode != 0:
            run("ip", "netns", "exec", namespace, "tc", *first, check=False)
            raise LabError(f"--delay needs the kernel's prio, netem and flower (sch_prio, "
                           f"sch_netem, cls_flower): tc {' '.join(argv)}: "
                           f"{result.stderr.strip()}; use --loss only")


def netem(namespace: str, device: str, delay_ms: float) -> None:
    """Delay every frame leaving ``device`` by ``delay_ms`` (0 removes the delay)."""
    if delay_ms:
        result = run("ip", "netns", "exec", namespace, "tc", "qdisc", "replace", "dev", device,
                     "root", "netem", "delay", f"{delay_ms:g}ms", check=False)
        if result.returncode != 0:
            raise LabError(f"--delay needs netem (sch_netem) in this kernel: "
                           f"{result.stderr.strip()}; use --loss only, or run the lab in "
                           "the virtual machine (docs/lab.md, \"Radios\")")
    else:
        run("ip", "netns", "exec", namespace, "tc", "qdisc", "del", "dev", device, "root",
            check=False)
