"""The radio lab's peer links between topology neighbours only (node/lab/peering.py), on any
host: reading ``iw``'s station dump, deciding what to open and close, and the loop that
does it against a simulated air. The real links are tested on simulated radios in the
virtual machine (tests/lab/test_radio_lab.py, the 3x3 grid)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.lab import peering
from node.lab.lab import LabNode, LabState, MeshLab
from node.lab.netns import LabError
from node.lab.topology import links

DUMP = """Station 42:00:00:00:02:00 (on mesh0)
\tinactive time:\t120 ms
\trx bytes:\t5120
\tsignal:  \t-30 dBm
\tmesh llid:\t4711
\tmesh plid:\t815
\tmesh plink:\tESTAB
\tmesh airtime link metric: 43
\tauthorized:\tyes
Station 42:00:00:00:05:00 (on mesh0)
\tinactive time:\t40 ms
\tmesh plink:\tLISTEN
Station 42:00:00:00:09:00 (on mesh0)
\tinactive time:\t40 ms
"""


def mac(name: str) -> str:
    return f"42:00:00:00:{int(name[1:]):02x}:00"


def grid_lab(tmp_path: Path, cut: list[tuple[str, str]] | None = None) -> MeshLab:
    nodes = {f"n{i}": LabNode(f"n{i}", i, f"mhl-t-n{i}", f"10.42.0.{i}",
                              str(tmp_path / f"n{i}" / "node.toml"), mesh_mac=mac(f"n{i}"),
                              pids={"agent": 1})
             for i in range(1, 10)}
    state = LabState("t", str(tmp_path), "grid", 4.0, nodes,
                     [(f"n{a}", f"n{b}") for a, b in links(9, "grid")], radio=True)
    state.cut = list(cut or [])
    return MeshLab(state)


def test_the_station_dump_gives_each_stations_peer_link() -> None:
    assert peering.parse_station_dump(DUMP) == {"42:00:00:00:02:00": "ESTAB",
                                                "42:00:00:00:05:00": "LISTEN",
                                                "42:00:00:00:09:00": "UNKNOWN"}
    assert peering.parse_station_dump("") == {}


def test_the_plan_opens_missing_neighbour_links_and_closes_the_others() -> None:
    macs = {n: mac(n) for n in ("n1", "n2", "n3")}
    wanted = {frozenset(("n1", "n2")), frozenset(("n2", "n3"))}
    states = {"n1": {mac("n2"): "ESTAB", mac("n3"): "ESTAB", "02:aa:00:00:00:01": "ESTAB"},
              "n2": {mac("n1"): "ESTAB", mac("n3"): "LISTEN"},
              "n3": {mac("n1"): "ESTAB"}}
    opens, closes = peering.plan(wanted, states, macs)
    assert opens == [("n2", "n3"), ("n3", "n2")]  # from each end that lacks it
    assert closes == [("n1", "n3"), ("n3", "n1")]  # not neighbours: closed at both ends
    # a station that is no lab node (a rogue radio in a test) is left alone
    assert all("02:aa" not in macs[b] for _, b in opens + closes)
    done = {"n1": {mac("n2"): "ESTAB"}, "n2": {mac("n1"): "ESTAB", mac("n3"): "ESTAB"},
            "n3": {mac("n2"): "ESTAB"}}
    assert peering.plan(wanted, done, macs) == ([], [])


def test_wanted_links_leave_out_cut_links_and_nodes_without_power(tmp_path: Path) -> None:
    lab = grid_lab(tmp_path, cut=[("n1", "n2")])
    lab.node("n9").pids = {}
    wanted = peering.wanted_links(lab)
    assert frozenset(("n1", "n2")) not in wanted and frozenset(("n1", "n4")) in wanted
    assert not any("n9" in link for link in wanted)
    assert len(wanted) == 12 - 1 - 2  # the 3x3 grid's 12 links, one cut, two of n9's


class Air:
    """Simulated wpa_supplicants and kernels: an open peers both ends (after
    ``slow`` refusals of each end, as a supplicant that has not heard the beacon yet)."""

    def __init__(self, lab: MeshLab, slow: int = 0, refuse: frozenset[str] = frozenset()):
        self.by_mac = {n.mesh_mac: n.name for n in lab.state.nodes.values()}
        self.estab: set[frozenset[str]] = set()
        self.calls: list[tuple[str, str, str]] = []
        self.slow, self.refuse = slow, refuse

    def stations(self, lab: MeshLab, name: str) -> dict[str, str]:
        return {lab.node(b).mesh_mac: "ESTAB" if frozenset((name, b)) in self.estab else
                "LISTEN" for b in lab.state.nodes if b != name}

    def command(self, lab: MeshLab, name: str, verb: str, peer_mac: str) -> bool:
        other = self.by_mac[peer_mac]
        self.calls.append((name, verb, other))
        link = frozenset((name, other))
        if verb == "mesh_peer_remove":
            self.estab.discard(link)
            return True
        if link in self.refuse or sum(c[:2] == (name, verb) for c in self.calls) <= self.slow:
            return False
        self.estab.add(link)
        return True


def test_the_loop_peers_the_grid_as_drawn_and_a_cut_closes_one_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = grid_lab(tmp_path)
    air = Air(lab, slow=2)
    monkeypatch.setattr(peering, "stations", air.stations)
    monkeypatch.setattr(peering, "peer_command", air.command)
    monkeypatch.setattr(peering, "PAUSE", 0)
    monkeypatch.setattr(peering, "OPEN_PATIENCE", 0)
    monkeypatch.setattr(peering, "REFUSED_PATIENCE", 0)
    lab.state.save = lambda: None  # type: ignore[method-assign]
    peering.wait_peers(lab, timeout=30)
    assert air.estab == {frozenset(link) for link in lab.state.links}
    assert not any(verb == "mesh_peer_remove" for _, verb, _ in air.calls)
    air.calls.clear()
    lab.set_link("n5", "n6", up=False)
    assert frozenset(("n5", "n6")) not in air.estab and len(air.estab) == 11
    assert {c[2] for c in air.calls if c[1] == "mesh_peer_remove"} <= {"n5", "n6"}
    lab.set_link("n5", "n6", up=True)
    assert len(air.estab) == 12


def test_a_link_that_never_forms_is_named_at_the_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = grid_lab(tmp_path)
    air = Air(lab, refuse=frozenset({frozenset(("n4", "n7"))}))
    monkeypatch.setattr(peering, "stations", air.stations)
    monkeypatch.setattr(peering, "peer_command", air.command)
    monkeypatch.setattr(peering, "PAUSE", 0.01)
    with pytest.raises(LabError) as caught:
        peering.wait_peers(lab, timeout=0.5)
    message = str(caught.value)
    assert message.startswith("the radio links did not follow the topology within 0.5 s: "
                              "n4-n7 not established at n4; n7-n4 not established at n7; ")
    assert "\n" not in message and "wpa_supplicant-mesh.log" in message
