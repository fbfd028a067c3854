"""Who peers with whom on a radio lab's one shared medium: topology neighbours only.

Every simulated radio hears every other, so 802.11s alone would open a peer link between
every two nodes. A radio lab's nodes run their mesh with ``mesh.auto_peer = false``
(wpa_supplicant's ``no_auto_peer``: a node opens no peer link itself, but answers one
that another opens), and the lab opens the links its topology draws, from both ends,
with ``wpa_cli mesh_peer_add MAC`` on each node's own mesh supplicant: SAE with the
lab's mesh key, then the peering protocol, as any two nodes do. ``lab cut`` closes a
link from both ends (``mesh_peer_remove``) and ``lab heal`` opens it again; a node
started again after ``lab kill`` is peered with its neighbours again. A node hears
nothing from a radio it has no established link with: 802.11s drops every data frame
from such a station (with SAE it could not decrypt them either), so babeld sees only
its topology neighbours. Beacons and peering frames still cross the whole air, as they
would between nodes in range of each other.

The witness is the kernel's: ``iw dev mesh0 station dump`` lists each station the radio
knows with its ``mesh plink`` state; ``ESTAB`` is an established peer link.
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from node.lab.netns import LabError, run

if TYPE_CHECKING:
    from node.lab.lab import MeshLab

_log = logging.getLogger(__name__)

MESH_IF = "mesh0"
#: A link opened with ``mesh_peer_add`` is given this long before it is opened again:
#: SAE retries after 10-20 s (wpa_supplicant's MESH_AUTH_TIMEOUT), then the peering.
OPEN_PATIENCE = 25.0
#: ... and one it refused (no beacon heard from that peer yet, or a link already being
#: made) this long: each try is two processes, which a starved machine feels.
REFUSED_PATIENCE = 3.0
#: Seconds between two looks at every node's stations.
PAUSE = 1.0
#: How long ``lab cut``, ``lab heal`` and ``lab revive`` wait for the links to follow.
CHANGE_WAIT = 180.0
_STATION = re.compile(r"^Station ([0-9a-f]{2}(?::[0-9a-f]{2}){5})\b")
_PLINK = re.compile(r"^\s*mesh plink:\s*(\S+)")

Link = frozenset[str]


def parse_station_dump(text: str) -> dict[str, str]:
    """MAC address -> mesh peer link state (``ESTAB``, ``LISTEN``, ``OPN_SNT``, ``HOLDING``,
    ``BLOCKED`` ...) of each station in ``iw dev IF station dump``'s output."""
    found: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        station = _STATION.match(line.strip())
        if station:
            current = station.group(1)
            found[current] = "UNKNOWN"
            continue
        plink = _PLINK.match(line)
        if plink and current:
            found[current] = plink.group(1)
    return found


def plan(wanted: set[Link], states: Mapping[str, Mapping[str, str]],
         macs: Mapping[str, str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """What to do now: ``(opens, closes)``, each a list of ``(node, peer)``.

    ``states``: node -> its stations' states (:func:`parse_station_dump`), for the nodes
    read this round; ``macs``: node -> its mesh point's MAC. A wanted link that is not
    established at one end is opened from that end; an established link between two
    nodes of ``macs`` that is not wanted (cut) is closed at each end that holds it.
    Stations that are not lab nodes (a rogue radio in a test) are left alone.
    """
    by_mac = {mac: name for name, mac in macs.items()}
    opens: list[tuple[str, str]] = []
    closes: list[tuple[str, str]] = []
    for name in sorted(states, key=_number):
        established = {by_mac[mac] for mac, state in states[name].items()
                       if state == "ESTAB" and mac in by_mac}
        for other in sorted(macs, key=_number):
            if other == name:
                continue
            link = frozenset((name, other))
            if link in wanted and other not in established:
                opens.append((name, other))
            elif link not in wanted and other in established:
                closes.append((name, other))
    return opens, closes


def _number(name: str) -> int:
    return int(name[1:]) if name[1:].isdigit() else 0


def wanted_links(lab: MeshLab) -> set[Link]:
    """The peer links the lab should have now: its topology's, less the cut ones and
    those of nodes without power (``lab kill``)."""
    st = lab.state
    powered = {n.name for n in st.nodes.values() if n.pids}
    cut = {frozenset(pair) for pair in st.cut}
    return {frozenset((a, b)) for a, b in st.links
            if a in powered and b in powered and frozenset((a, b)) not in cut}


def stations(lab: MeshLab, name: str) -> dict[str, str] | None:
    """Node ``name``'s stations and their peer link states, or None when ``iw`` does not
    answer in time (a starved machine: asked again next round)."""
    try:
        out = run("ip", "netns", "exec", lab.node(name).ns, "iw", "dev", MESH_IF, "station",
                  "dump", check=False, timeout=30)
    except subprocess.TimeoutExpired:
        return None
    return parse_station_dump(out.stdout) if out.returncode == 0 else None


def peer_command(lab: MeshLab, name: str, verb: str, mac: str) -> bool:
    """``wpa_cli mesh_peer_add|mesh_peer_remove MAC`` on node ``name``'s mesh supplicant;
    whether it answered OK (it refuses a peer whose beacon it has not heard yet, and one
    it is already connecting to)."""
    ctrl = Path(lab.state.state_dir) / name / "run" / "wpa_supplicant"
    try:
        out = run("ip", "netns", "exec", lab.node(name).ns, "wpa_cli", "-p", str(ctrl), "-i",
                  MESH_IF, verb, mac, check=False, timeout=30)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and out.stdout.strip().endswith("OK")


def wait_peers(lab: MeshLab, timeout: float) -> float:
    """Open and close peer links until every node of the lab that has power peers with
    exactly its neighbours (:func:`wanted_links`), at both ends; seconds taken. At the
    deadline, one :class:`LabError` naming the links still wrong."""
    started = time.monotonic()
    deadline = started + timeout
    not_before: dict[tuple[str, str], float] = {}
    while True:
        powered = [n for n in lab.state.nodes.values() if n.pids and n.mesh_mac]
        macs = {n.name: n.mesh_mac for n in powered}
        read = {n.name: stations(lab, n.name) for n in powered}
        states = {name: found for name, found in read.items() if found is not None}
        opens, closes = plan(wanted_links(lab), states, macs)
        if not opens and not closes and len(states) == len(powered):
            _log.info("lab %s: peer links as the topology draws them after %.1f s",
                      lab.state.id, time.monotonic() - started)
            return time.monotonic() - started
        if time.monotonic() > deadline:
            wrong = [f"{a}-{b} not established at {a}" for a, b in opens] + \
                    [f"{a}-{b} still established at {a}" for a, b in closes] + \
                    [f"{n}'s stations unread (iw did not answer)" for n in read
                     if read[n] is None]
            raise LabError(f"the radio links did not follow the topology within "
                           f"{timeout:g} s: {'; '.join(wrong)}; read {lab.state.state_dir}/"
                           "NODE/run/wpa_supplicant-mesh.log")
        now = time.monotonic()
        for name, other in closes:
            peer_command(lab, name, "mesh_peer_remove", macs[other])
        for name, other in opens:
            if now >= not_before.get((name, other), 0):
                opened = peer_command(lab, name, "mesh_peer_add", macs[other])
                not_before[(name, other)] = now + (OPEN_PATIENCE if opened
                                                   else REFUSED_PATIENCE)
        time.sleep(PAUSE)
