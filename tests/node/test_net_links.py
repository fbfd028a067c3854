"""``meshhub net up``: the links a node needs at every boot, idempotent, with a fake runner."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from node.config import parse_config
from node.net import check_network
from node.net.links import LinkError, bring_up, link_commands

CONFIG = """
[node]
name = "elm-1"
[mesh]
address = "10.42.0.7"
"""


def fake_sys(tmp_path: Path, interfaces: Sequence[str], phys: Sequence[str]) -> Path:
    """A /sys/class/net with these interfaces and a /sys/class/ieee80211 with these radios."""
    net = tmp_path / "class" / "net"
    net.mkdir(parents=True)
    for name in interfaces:
        (net / name).mkdir()
    (tmp_path / "class" / "ieee80211").mkdir()
    for phy in phys:
        (tmp_path / "class" / "ieee80211" / phy).mkdir()
    return net


def test_links_come_up_in_order_and_again_without_harm(tmp_path: Path) -> None:
    cfg = parse_config(CONFIG, tmp_path / "node.toml")
    addresses = check_network(cfg)
    ran: list[tuple[str, ...]] = []

    def run(argv: Sequence[str], _stdin: str | None) -> tuple[int, str, str]:
        ran.append(tuple(argv))
        if argv[:2] == ("iw", "phy"):
            (net / argv[5]).mkdir()
        return 0, "", ""

    net = fake_sys(tmp_path, ["lo", "wlan0"], ["phy0"])
    bring_up(cfg, addresses, run, sys_net=net)
    assert ran == link_commands(cfg, addresses)
    assert ran[0] == ("ip", "address", "replace", "10.42.0.7/32", "dev", "lo")
    assert ran[-1] == ("ip", "address", "replace", addresses.portal_interface_address,
                       "dev", "wlan0")
    assert not any(c[0] in ("hostapd", "dnsmasq", "babeld", "nft") for c in ran)

    ran.clear()

    def again(argv: Sequence[str], _stdin: str | None) -> tuple[int, str, str]:
        ran.append(tuple(argv))
        if argv[3:4] == ("mesh",):
            return 240, "", "command failed: Operation already in progress (-114)"
        return 0, "", ""

    done = bring_up(cfg, addresses, again, sys_net=net)
    assert not any(c[:2] == ("iw", "phy") for c in ran)  # mesh0 exists: not added twice
    assert any("already joined" in line for line in done)


def test_a_missing_radio_skips_its_steps_and_a_failure_is_named(tmp_path: Path) -> None:
    cfg = parse_config(CONFIG, tmp_path / "node.toml")
    addresses = check_network(cfg)
    net = fake_sys(tmp_path, ["lo"], [])
    ran: list[tuple[str, ...]] = []
    done = bring_up(cfg, addresses, lambda argv, _s: (ran.append(tuple(argv)), (0, "", ""))[1],
                    sys_net=net)
    assert ran == [("ip", "address", "replace", "10.42.0.7/32", "dev", "lo")]
    assert any("skipped (no radio phy0)" in line for line in done)
    assert any("skipped (no wlan0)" in line for line in done)
    with pytest.raises(LinkError, match=r"'ip address replace 10.42.0.7/32 dev lo' failed "
                                        r"\(exit 2\): RTNETLINK answers: Operation not "):
        bring_up(cfg, addresses, lambda _a, _s: (2, "", "RTNETLINK answers: Operation not "
                                                         "permitted"), sys_net=net)
