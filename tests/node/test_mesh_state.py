"""babeld's monitoring output parsed into the mesh state, on output captured from a real babeld.

The fixtures in tests/fixtures/babel/ come from babeld 1.12 in a 3-node line of
namespaces (10.42.0.1 - 10.42.0.2 - 10.42.0.3, wired veth links, 1 s hellos):
``dump-line3-end.txt`` is node 1's dump; ``monitor-link-cut-heal.txt`` node 1's
monitor stream while the 2-3 link went down and came back; and
``monitor-neighbour-killed.txt`` node 2's stream while node 3's babeld was killed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.mesh.babel_parse import INFINITY, parse_greeting, parse_line, to_neighbour, to_route
from node.mesh.state import MeshState

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "babel"


def lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def test_neighbour_line_is_parsed_with_link_costs() -> None:
    event = parse_line("add neighbour 55a1dc54d630 address fe80::acc3:7dff:fec6:f20e if m-2 "
                       "reach fff0 ureach 0000 rxcost 96 txcost 96 cost 96")
    assert event is not None and event.action == "add" and event.kind == "neighbour"
    n = to_neighbour(event)
    assert (n.address, n.interface, n.cost, n.rxcost, n.txcost) == (
        "fe80::acc3:7dff:fec6:f20e", "m-2", 96, 96, 96)
    assert n.reach == 0xFFF0 and n.reach_ratio == 12 / 16 and n.alive


def test_route_line_and_a_retracted_route() -> None:
    route = to_route(parse_line(  # type: ignore[arg-type]
        "change route 55a1dc54c530 prefix 10.42.0.3/32 from 0.0.0.0/0 installed yes "
        "id 0c:d4:67:17:b9:14:3a:96 metric 65535 refmetric 65535 via fe80::acc3:7dff:fec6:f20e "
        "if m-2"))
    assert route.prefix == "10.42.0.3/32" and route.installed and route.via.startswith("fe80")
    assert route.metric == INFINITY and not route.reachable


def test_greetings_ok_and_unknown_lines_are_not_events() -> None:
    for line in ("BABEL 1.0", "version babeld-1.12.1", "ok", "", "add", "add frobnicator x y",
                 "remove route x", "bad"):
        assert parse_line(line) is None
    # A truncated line keeps what it has instead of guessing the rest.
    event = parse_line("add neighbour abc address fe80::1 if m0 reach")
    assert event is not None and to_neighbour(event).cost == INFINITY
    assert parse_greeting(lines("dump-line3-end.txt")) == {
        "protocol": "1.0", "version": "babeld-1.12.1", "host": "vm",
        "my-id": "04:3e:23:38:9c:ce:19:4c"}


def test_dump_of_the_end_of_a_line() -> None:
    state = MeshState("10.42.0.0/16")
    state.reset(connected=True)
    assert state.feed(lines("dump-line3-end.txt")) == 7
    snap = state.snapshot()
    assert [(i.name, i.up) for i in snap.interfaces] == [("m-1", False), ("m-2", True),
                                                         ("m-3", False)]
    assert [n.address for n in snap.neighbours] == ["fe80::acc3:7dff:fec6:f20e"]
    assert state.node_addresses() == ["10.42.0.2", "10.42.0.3"]
    # Only node 2 is a neighbour; node 3 is two hops away (refmetric 96).
    assert state.neighbour_addresses() == {"fe80::acc3:7dff:fec6:f20e": "10.42.0.2"}
    health = state.health()
    assert health is not None
    assert health["routes"] == 2 and health["nodes"] == ["10.42.0.2", "10.42.0.3"]
    assert health["announced"] == ["10.42.0.1/32"]
    assert health["neighbours"] == [{"address": "fe80::acc3:7dff:fec6:f20e", "interface": "m-2",
                                     "node": "10.42.0.2", "cost": 96, "rxcost": 96,
                                     "txcost": 96, "reach_ratio": 1.0}]


def test_link_cut_then_healed_as_seen_two_hops_away() -> None:
    stream = lines("monitor-link-cut-heal.txt")
    state = MeshState("10.42.0.0/16")
    state.reset(connected=True)
    reachable_over_time = []
    for line in stream:
        state.feed([line])
        if line.startswith("change route") and "10.42.0.3/32" in line:
            reachable_over_time.append("10.42.0.3" in state.node_addresses())
    # Reachable, then lost while the far link was down, then back after the heal.
    assert reachable_over_time[0] and reachable_over_time[-1]
    assert False in reachable_over_time
    first_loss = reachable_over_time.index(False)
    assert True in reachable_over_time[first_loss:]


def test_killed_neighbour_is_flushed() -> None:
    state = MeshState("10.42.0.0/16")
    state.reset(connected=True)
    state.feed(lines("monitor-neighbour-killed.txt"))
    snap = state.snapshot()
    assert [n.interface for n in snap.neighbours] == ["m-1"]
    assert state.node_addresses() == ["10.42.0.1"]
    assert set(state.neighbour_addresses().values()) == {"10.42.0.1"}


def test_disconnected_state_reports_no_mesh_data() -> None:
    state = MeshState()
    assert state.health() is None
    state.reset(connected=True)
    state.feed(lines("dump-line3-end.txt"))
    state.reset(connected=False)
    assert state.health() is None and state.node_addresses() == []


def test_addresses_outside_the_mesh_range_are_not_nodes() -> None:
    state = MeshState("10.42.0.0/16")
    state.reset(connected=True)
    state.feed(["add neighbour n1 address fe80::1 if m0 reach ffff rxcost 96 txcost 96 cost 96",
                "add route r1 prefix 10.64.7.0/24 from 0.0.0.0/0 installed yes id x metric 96 "
                "refmetric 0 via fe80::1 if m0",
                "add route r2 prefix 192.0.2.1/32 from 0.0.0.0/0 installed yes id x metric 96 "
                "refmetric 0 via fe80::1 if m0"])
    assert state.node_addresses() == [] and state.neighbour_addresses() == {}


def _grid_routes(state: MeshState, far: int) -> None:
    """Two neighbours (10.42.0.2 at fe80::2, 10.42.0.3 at fe80::3), each originating its
    address and offering routes to ``far`` other nodes, as at a node of a large grid."""
    state.feed([f"add neighbour n{i} address fe80::{i} if m{i} reach ffff rxcost 96 "
                f"txcost 96 cost 96" for i in (2, 3)])
    state.feed([f"add route o{i} prefix 10.42.0.{i}/32 from 0.0.0.0/0 installed yes id x "
                f"metric 96 refmetric 0 via fe80::{i} if m{i}" for i in (2, 3)])
    state.feed([f"add route r{i}-{n} prefix 10.42.{1 + n // 200}.{n % 200}/32 from 0.0.0.0/0 "
                f"installed {'yes' if i == 2 else 'no'} id x metric {96 * (n % 26 + 2)} "
                f"refmetric {96 * (n % 26 + 1)} via fe80::{i} if m{i}"
                for i in (2, 3) for n in range(far)])


def test_listing_the_neighbours_again_looks_at_no_route_when_none_of_theirs_changed(
        monkeypatch: Any) -> None:
    """At 200 nodes babeld holds ~800 routes and reports changes to them all the time;
    the agent lists its neighbours at every post it passes on. Those lists look again
    only when a neighbour or a route a neighbour originates changed, and say the same as
    a fresh look."""
    state = MeshState("10.42.0.0/16")
    state.reset(connected=True)
    _grid_routes(state, 400)
    looked: list[str] = []
    parse = MeshState._in_range
    monkeypatch.setattr(MeshState, "_in_range",
                        lambda self, prefix: looked.append(prefix) or parse(self, prefix))
    expected = {"fe80::2": "10.42.0.2", "fe80::3": "10.42.0.3"}
    assert state.neighbour_addresses() == expected
    first = len(looked)
    assert first == 2  # the two routes the neighbours originate, not the 800 others
    for _ in range(50):
        assert state.neighbour_addresses() == expected
    # A change to a route through a neighbour (not its own) changes nothing here.
    state.feed(["change route r2-7 prefix 10.42.1.7/32 from 0.0.0.0/0 installed yes id x "
                "metric 480 refmetric 384 via fe80::2 if m2"])
    assert state.neighbour_addresses() == expected
    assert len(looked) == first
    # The answer follows what does change it: a neighbour's own route retracted, then back;
    # a neighbour dead; a route that becomes a neighbour's own.
    state.feed(["change route o3 prefix 10.42.0.3/32 from 0.0.0.0/0 installed yes id x "
                "metric 65535 refmetric 0 via fe80::3 if m3"])
    assert state.neighbour_addresses() == {"fe80::2": "10.42.0.2"}
    state.feed(["change route o3 prefix 10.42.0.3/32 from 0.0.0.0/0 installed yes id x "
                "metric 96 refmetric 0 via fe80::3 if m3"])
    assert state.neighbour_addresses() == expected
    state.feed(["change neighbour n2 address fe80::2 if m2 reach 0000 rxcost 65535 "
                "txcost 65535 cost 65535"])
    assert state.neighbour_addresses() == {"fe80::3": "10.42.0.3"}
    state.feed(["change route r3-5 prefix 10.42.1.5/32 from 0.0.0.0/0 installed no id x "
                "metric 96 refmetric 0 via fe80::3 if m3"])
    assert state.neighbour_addresses() == {"fe80::3": "10.42.1.5"}
    state.feed(["flush route r3-5 prefix 10.42.1.5/32 from 0.0.0.0/0 installed no id x "
                "metric 96 refmetric 0 via fe80::3 if m3"])
    assert state.neighbour_addresses() == {"fe80::3": "10.42.0.3"}
    state.reset(connected=True)
    assert state.neighbour_addresses() == {}
