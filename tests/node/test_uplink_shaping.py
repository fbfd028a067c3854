"""The agent keeps CAKE on the uplink (node.mesh.shaping), against a table of qdiscs in
memory that answers ``tc``/``ip`` as the kernel would. The real kernel's CAKE is in the
VM test (tests/vm/test_node_boots.py, the fair share of the uplink)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from node.mesh.shaping import UplinkShaping
from node.mesh.uplink import UplinkWatch
from node.net.render_shaping import IFB


class Qdiscs:
    """Root and ingress qdiscs per device, changed through ``tc``/``ip`` argv."""

    def __init__(self, cake_known: bool = True) -> None:
        self.root: dict[str, str] = {"up0": "fq_codel"}
        self.ingress: set[str] = set()
        self.cake_known = cake_known
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> tuple[int, str, str]:
        argv = list(argv)
        self.calls.append(argv)
        if argv == ["tc", "-j", "qdisc", "show"]:
            rows = [{"kind": kind, "handle": "8001:", "dev": dev, "root": True}
                    for dev, kind in self.root.items()]
            rows += [{"kind": "ingress", "handle": "ffff:", "dev": dev, "parent": "ffff:fff1"}
                     for dev in self.ingress]
            return 0, json.dumps(rows), ""
        if argv[:3] == ["ip", "link", "add"]:
            if argv[3] in self.root:
                return 2, "", "RTNETLINK answers: File exists"
            self.root[argv[3]] = "noqueue"
            return 0, "", ""
        if argv[:3] == ["ip", "link", "del"]:
            self.root.pop(argv[3])
            return 0, "", ""
        if argv[:2] == ["ip", "link"] or argv[:2] == ["tc", "filter"]:
            return 0, "", ""
        dev = argv[4]
        if dev not in self.root:
            return 1, "", f'Cannot find device "{dev}"'
        if argv[:3] == ["tc", "qdisc", "replace"] and argv[5:] == ["handle", "ffff:", "ingress"]:
            self.ingress.add(dev)
            return 0, "", ""
        if argv[:3] == ["tc", "qdisc", "replace"] and "cake" in argv:
            if not self.cake_known:
                return 2, "", "Error: Specified qdisc kind is unknown."
            self.root[dev] = "cake"
            return 0, "", ""
        if argv[:3] == ["tc", "qdisc", "del"]:
            if argv[-1] == "ingress":
                self.ingress.discard(dev)
            else:
                self.root[dev] = "fq_codel"
            return 0, "", ""
        raise AssertionError(f"unexpected command {argv}")

    def changes(self) -> list[list[str]]:
        return [c for c in self.calls if c != ["tc", "-j", "qdisc", "show"]]


def test_cake_is_applied_once_and_put_back_when_the_interface_lost_it() -> None:
    kernel = Qdiscs()
    shaping = UplinkShaping("up0", 8000, 40000, runner=kernel)
    assert shaping.ensure() == "CAKE, fair per device: upload 8000 kbit/s, download 40000 kbit/s"
    assert kernel.root == {"up0": "cake", IFB: "cake"} and kernel.ingress == {"up0"}
    assert ["tc", "qdisc", "replace", "dev", "up0", "root", "cake", "bandwidth", "8000kbit",
            "besteffort", "dual-srchost", "nat"] in kernel.calls
    kernel.calls.clear()
    shaping.ensure()
    assert kernel.changes() == []  # all there: one look, nothing run
    # A 4G dongle plugged in again: the interface comes back with the kernel's default.
    kernel.root["up0"] = "fq_codel"
    kernel.ingress.clear()
    shaping.ensure()
    assert kernel.root == {"up0": "cake", IFB: "cake"} and kernel.ingress == {"up0"}


def test_a_direction_turned_off_loses_what_an_earlier_run_left() -> None:
    kernel = Qdiscs()
    UplinkShaping("up0", 8000, 40000, runner=kernel).ensure()
    kernel.calls.clear()
    shaping = UplinkShaping("up0", 0, 0, runner=kernel)  # the agent restarted with speeds 0
    assert shaping.ensure().startswith("off:")
    assert kernel.root == {"up0": "fq_codel"} and kernel.ingress == set()
    kernel.calls.clear()
    shaping.ensure()
    assert kernel.calls == []  # off: nothing to look at any more


def test_a_kernel_without_cake_is_reported_and_tried_again() -> None:
    kernel = Qdiscs(cake_known=False)
    shaping = UplinkShaping("up0", 8000, 0, runner=kernel)
    state = shaping.ensure()
    assert state.startswith("failed: `tc qdisc replace dev up0 root cake bandwidth 8000kbit")
    assert state.endswith("Error: Specified qdisc kind is unknown.")
    kernel.cake_known = True  # e.g. the module was installed
    assert shaping.ensure().startswith("CAKE")
    assert kernel.root["up0"] == "cake"


def test_the_uplink_watch_keeps_it_while_the_interface_is_there() -> None:
    kernel = Qdiscs()
    link = {"state": "missing"}

    def runner(argv: Sequence[str]) -> tuple[int, str, str]:
        if argv[0] == "ip" and argv[1] in ("-j", "-4"):
            rows = [{"dst": "default", "gateway": "198.51.100.1", "dev": "up0", "metric": 0,
                     "protocol": "dhcp"}]
            return 0, json.dumps(rows), ""
        return kernel(argv)

    watch = UplinkWatch("up0", runner=runner, link=lambda _name: link["state"],
                        shaping=UplinkShaping("up0", 8000, 0, runner=kernel))
    watch.step()  # a dongle not plugged in: nothing to shape
    assert kernel.calls == [] and watch.health()["fairness"] == "not checked yet"
    link["state"] = "up"
    watch.step()
    assert kernel.root["up0"] == "cake"
    assert watch.health()["fairness"] == "CAKE, fair per device: upload 8000 kbit/s"
