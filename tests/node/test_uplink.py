"""The uplink watch's decisions (node.mesh.uplink), against a routing table in memory
that answers ``ip`` as the kernel would; the lab test runs it against the real kernel
and babeld (tests/lab/test_uplink_failover.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from node.config import parse_config
from node.errors import ConfigError
from node.mesh.uplink import ANNOUNCE_METRIC, DEMOTE_OFFSET, UplinkWatch, uplink_watch
from node.net.validate import check_network

TOML_PATH = Path("/etc/meshhub/node.toml")


class Table:
    """The main table's IPv4 default routes, changed and listed through ``ip`` argv."""

    def __init__(self) -> None:
        # (dev, gateway, metric, protocol); babeld's own route among them when installed.
        self.routes: set[tuple[str, str, int, str]] = {("up0", "198.51.100.1", 0, "dhcp")}
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> tuple[int, str, str]:
        argv = list(argv)
        self.calls.append(argv)
        if argv[:3] == ["ip", "-j", "-4"]:
            rows = [{"dst": "default", "gateway": gw, "dev": dev, "metric": metric,
                     "protocol": proto} for dev, gw, metric, proto in sorted(self.routes)]
            return 0, json.dumps(rows), ""
        verb, words = argv[3], argv[4:]
        spec = dict(zip(words[1::2], words[2::2], strict=False))
        route = (spec["dev"], spec.get("via", ""), int(spec["metric"]), spec["proto"])
        key = (route[0], route[2])
        if verb == "replace":
            self.routes = {r for r in self.routes if (r[0], r[2]) != key} | {route}
            return 0, "", ""
        if verb == "del" and route in self.routes:
            self.routes.discard(route)
            return 0, "", ""
        return 2, "", "RTNETLINK answers: No such process"

    def metrics(self, protocol: str) -> list[int]:
        return sorted(m for _d, _g, m, p in self.routes if p == protocol)


def watch(table: Table, answers: list[str | None], link: str = "up") -> UplinkWatch:
    replies = iter(answers)
    return UplinkWatch("up0", targets=[("198.18.0.80", 80)], interval=0.5, failures=2,
                       runner=table, probe=lambda *_args: next(replies),
                       link=lambda _name: link, clock=lambda: 1000.0)


def test_a_working_uplink_is_announced_and_carries_the_node_s_own_traffic() -> None:
    table = Table()
    w = watch(table, [None])
    w.step()
    assert w.status.healthy and w.status.announced
    assert table.metrics("201") == [ANNOUNCE_METRIC]  # what babeld redistributes
    assert table.metrics("dhcp") == [0]  # untouched: the node's own default route


def test_a_dead_uplink_is_withdrawn_after_the_failures_in_a_row_and_comes_back() -> None:
    table = Table()
    w = watch(table, [None, "198.18.0.80:80: no answer within 0.5 s", None,
                      "no answer", "no answer", None, None])
    w.step()
    w.step()  # one failure: not yet (a lost packet is no outage)
    assert w.status.announced and w.status.withdrawals == 0
    w.step()  # a good check resets the count
    w.step()
    w.step()  # two in a row: withdrawn, and the uplink's route gives way to babeld's
    assert not w.status.healthy and not w.status.announced and w.status.withdrawals == 1
    assert w.status.reason == "no answer"
    assert table.metrics("201") == []
    assert table.metrics("dhcp") == [DEMOTE_OFFSET]  # kept for the checks, as last resort
    w.step()
    assert not w.status.announced  # one good check is not enough to come back
    w.step()
    assert w.status.healthy and w.status.announced
    assert table.metrics("201") == [ANNOUNCE_METRIC] and table.metrics("dhcp") == [0]
    assert w.health()["failed_checks"] == 3


def test_a_cable_pulled_withdraws_at_once_silence_needs_confirming() -> None:
    table, state = Table(), ["up"]
    replies = iter([None, None, None])
    w = UplinkWatch("up0", targets=[("198.18.0.80", 80)], interval=0.5, failures=2,
                    runner=table, probe=lambda *_args: next(replies),
                    link=lambda _name: state[0], clock=lambda: 1000.0)
    w.step()
    assert w.status.announced
    state[0] = "lowerlayerdown"
    w.step()  # no second check needed: the carrier is gone
    assert not w.status.announced and w.status.reason == "up0 is lowerlayerdown"
    assert table.metrics("dhcp") == [DEMOTE_OFFSET]
    state[0] = "up"
    w.step()
    assert not w.status.announced  # coming back is confirmed like any change
    w.step()
    assert w.status.announced and table.metrics("dhcp") == [0]


def test_a_link_down_or_a_missing_route_fails_without_asking_the_targets() -> None:
    table = Table()
    w = watch(table, [], link="lowerlayerdown")
    assert w.check() == "up0 is lowerlayerdown"
    table.routes.clear()
    w = watch(table, [])
    assert w.check() == "no default route through up0"


def test_a_route_the_dhcp_client_re_adds_while_down_is_demoted_again() -> None:
    table = Table()
    w = watch(table, ["x", "x", "x"])
    w.step()  # the first check decides at once
    assert table.metrics("dhcp") == [DEMOTE_OFFSET]
    table.routes.add(("up0", "198.51.100.1", 0, "dhcp"))  # a lease renewed
    w.step()
    assert table.metrics("dhcp") == [DEMOTE_OFFSET]


def test_stop_restores_the_routes_and_removes_the_announcement() -> None:
    table = Table()
    w = watch(table, ["x"])
    w.start()
    w.stop()
    assert table.metrics("dhcp") == [0] and table.metrics("201") == []


def test_a_gateway_without_mesh_routing_keeps_cake_and_leaves_its_routes_alone() -> None:
    """A stand-alone gateway (no babeld) shares its line fairly too: its watch applies
    CAKE, announces nothing and demotes nothing, even while its line is down; and what a
    run with mesh routing left (an announcement, a demoted route) is undone."""
    from tests.node.test_uplink_shaping import Qdiscs

    cfg = parse_config('[clients]\nuplink_interface = "up0"\nuplink_download_kbit = 9000\n')
    w = uplink_watch(cfg)
    assert w is not None and not w.announce and w.shaping is not None
    table, kernel = Table(), Qdiscs()
    table.routes |= {("up0", "198.51.100.1", ANNOUNCE_METRIC, "201")}
    table.routes = {("up0", "198.51.100.1", DEMOTE_OFFSET, "dhcp")} | (table.routes - {
        ("up0", "198.51.100.1", 0, "dhcp")})
    w.runner, w.shaping.runner, w.link = table, kernel, lambda _name: "up"
    w.targets, w.probe = [("198.18.0.80", 80)], lambda *_args: "no answer within 1 s"
    for _ in range(3):
        w.step()
    assert w.health()["fairness"] == "CAKE, fair per device: download 9000 kbit/s"
    assert kernel.root["ifb-mh0"] == "cake" and "up0" in kernel.ingress
    assert w.status.healthy is False and not w.status.announced
    assert table.metrics("201") == [] and table.metrics("dhcp") == [0]


def test_config_keys_and_their_errors() -> None:
    cfg = parse_config('[mesh]\nrouting = true\n[clients]\nuplink_interface = "eth0"\n'
                       'uplink_check = ["192.0.2.1:80"]\nuplink_check_seconds = 0.5\n')
    w = uplink_watch(cfg)
    assert w is not None and w.targets == [("192.0.2.1", 80)] and w.interval == 0.5
    assert w.announce
    assert uplink_watch(parse_config("[mesh]\nrouting = true\n")) is None  # no uplink
    with pytest.raises(ConfigError) as bad:
        parse_config('[clients]\nuplink_interface = "eth0"\nuplink_check = ["example.org"]\n',
                     file=TOML_PATH)
    assert (f"{TOML_PATH}:3: clients.uplink_check: item 1 ('example.org') must be an IPv4 "
            "address and a TCP port") in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        parse_config("[clients]\nuplink_check_failures = 0\n", file=TOML_PATH)
    assert f"{TOML_PATH}:2: clients.uplink_check_failures: expected at least 1" \
        in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        check_network(parse_config('[clients]\nuplink_check = ["192.0.2.1:80"]\n'))
    assert "clients.uplink_check: set, but clients.uplink_interface is empty" in str(bad.value)


def test_the_health_command_says_whether_the_mesh_is_offered_the_uplink() -> None:
    from node.cli.health_cmd import describe_uplink

    table = Table()
    w = watch(table, ["203.0.113.80:80: no answer within 0.5 s"])
    w.step()
    part = {"interface": "up0", "configured": True, "present": False, **w.health()}
    assert describe_uplink(part) == (
        "uplink    up0: DOWN; not offered to the mesh (203.0.113.80:80: no answer within "
        "0.5 s); withdrawn 0 time(s)")
    assert describe_uplink({"interface": "eth0", "present": True}) == "uplink    eth0: present"


def test_the_uplink_alert_gives_the_check_s_reason() -> None:
    from node.health.alerts import Thresholds, conditions

    limits = Thresholds(uplink_required=True)
    checked = {"network": {"uplink": {"interface": "up0", "present": False, "healthy": False,
                                      "reason": "up0 is lowerlayerdown"}}}
    assert ("uplink_down", "up0", "up0 is lowerlayerdown") in list(conditions(checked, limits))
    unchecked = {"network": {"uplink": {"interface": "eth0", "present": False}}}
    assert ("uplink_down", "eth0", "no default route via the uplink") in list(
        conditions(unchecked, limits))
