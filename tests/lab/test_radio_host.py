"""The radio lab's parts that run on any host: refusals in one line, the air table, phones'
configuration, hostapd's error line. The radio lab itself runs where the kernel has
mac80211_hwsim (tests/vm/)."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.cli import cli
from node.lab import radio
from node.lab.air import MAX_DELAYED, render_air, render_delays
from node.lab.lab import LabNode, LabState, MeshLab
from node.lab.netns import LabError
from node.lab.phones import wpa_supplicant_conf
from node.lab.radio_nodes import radios_needed, wait_access_points
from node.net import build_plan
from tests.conftest import require_root, require_tool
from tests.node.test_net_render import plan as rendered_plan


def test_radio_needs_root() -> None:
    with pytest.raises(LabError, match=r"^--radio needs root .* run it with sudo$"):
        radio.check_radio_host(4, euid=1000)


def test_more_radios_than_the_module_makes() -> None:
    assert radios_needed(60, 1, phones=True) == 120
    assert radios_needed(30, 2, phones=True) == 90
    with pytest.raises(LabError, match="needs 120 radios but the lab makes at most 100"):
        radio.check_radio_host(radios_needed(60, 1, phones=True), euid=0)


def test_a_kernel_without_hwsim_is_named_with_the_way_out(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(radio.shutil, "which", lambda name: None)  # no modprobe either
    assert not radio.hwsim_available(tmp_path)
    with pytest.raises(LabError) as caught:
        radio.check_radio_host(6, euid=0, sys_root=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "no mac80211_hwsim" in message and "virtual machine with Debian's kernel" in message
    assert 'docs/lab.md, "Radios"' in message


def test_lab_up_radio_on_this_host_says_so_in_one_line() -> None:
    """On a host without hwsim (this kind of machine, CI's host), or without root."""
    if radio.hwsim_available():
        pytest.skip("this kernel has mac80211_hwsim: the radio lab runs here (tests/vm/)")
    result = CliRunner().invoke(cli, ["lab", "up", "--radio", "--nodes", "2"])
    assert result.exit_code != 0
    message = str(result.exception)
    assert "\n" not in message and "Traceback" not in result.output
    assert "--radio needs root" in message or "no mac80211_hwsim" in message


def test_radios_without_radio_is_refused() -> None:
    result = CliRunner().invoke(cli, ["lab", "up", "--radios", "2"])
    assert result.exit_code == 2 and "--radios needs --radio" in result.output


def _lab(tmp_path: Path, *, radio_lab: bool, ap_mac: str = "") -> MeshLab:
    nodes = {f"n{i}": LabNode(f"n{i}", i, f"mhl-t-n{i}", f"10.42.0.{i}",
                              str(tmp_path / f"n{i}" / "node.toml"), ap_mac=ap_mac)
             for i in (1, 2)}
    state = LabState("t", str(tmp_path), "line", 1.0, nodes, [("n1", "n2")], radio=radio_lab)
    return MeshLab(state)


def test_a_phone_on_a_node_without_an_access_point(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="needs a radio lab"):
        _lab(tmp_path, radio_lab=False).add_phone("n2")
    with pytest.raises(LabError, match=r"^n2 has no access point a phone could join$"):
        _lab(tmp_path, radio_lab=True).add_phone("n2")
    with pytest.raises(LabError, match="n2 is not running"):
        _lab(tmp_path, radio_lab=True, ap_mac="02:00:00:00:02:00").add_phone("n2")
    with pytest.raises(LabError, match="no node 'n9'"):
        _lab(tmp_path, radio_lab=True).add_phone("n9")


def test_degrade_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    lab = _lab(tmp_path, radio_lab=True)
    with pytest.raises(LabError, match=r"no node 'n3'"):
        lab.degrade("n1", "n3", 20)
    with pytest.raises(LabError, match="not a percentage"):
        lab.degrade("n1", "n2", 120)


def test_a_delay_on_the_air_slows_one_neighbour_alone() -> None:
    """lab degrade --delay in a radio lab: a netem band per delayed neighbour, chosen by its
    MAC (the commands run for real in the virtual machine: test_radio_lab.py)."""
    commands = render_delays("mesh0", {"02:00:00:00:03:00": 40, "02:00:00:00:02:00": 0})
    assert commands == [
        ["qdisc", "del", "dev", "mesh0", "root"],
        ["qdisc", "add", "dev", "mesh0", "root", "handle", "1:", "prio", "bands", "4",
         "priomap", "1", "2", "2", "2", "1", "2", "0", "0", "1", "1", "1", "1", "1", "1", "1",
         "1"],
        ["qdisc", "add", "dev", "mesh0", "parent", "1:4", "handle", "40:", "netem", "delay",
         "40ms"],
        ["filter", "add", "dev", "mesh0", "parent", "1:", "protocol", "all", "prio", "1",
         "flower", "dst_mac", "02:00:00:00:03:00", "classid", "1:4"]]
    assert render_delays("mesh0", {}) == [["qdisc", "del", "dev", "mesh0", "root"]]
    with pytest.raises(LabError, match="not a MAC"):
        render_delays("mesh0", {"02:00": 40})
    with pytest.raises(LabError, match="at most 13"):
        render_delays("mesh0", {f"02:00:00:00:{i:02x}:00": 5 for i in range(MAX_DELAYED + 1)})


def test_hostapd_error_line() -> None:
    # hostapd 2.10's own output when the kernel refused to start the access point
    # (seen with a mesh point beaconing at another interval on the same radio).
    log = ("ap0: interface state UNINITIALIZED->COUNTRY_UPDATE\n"
           "Failed to set beacon parameters\nInterface initialization failed\n"
           "ap0: interface state COUNTRY_UPDATE->DISABLED\nap0: AP-DISABLED \n")
    assert radio.hostapd_failure(log) == "Failed to set beacon parameters"
    assert radio.hostapd_failure("Line 12: invalid/unknown driver 'nl'\n1 errors found in "
                                 "configuration file 'x'\n") == \
        "Line 12: invalid/unknown driver 'nl'"
    assert radio.hostapd_failure("ap0: interface state UNINITIALIZED->ENABLED\n"
                                 "ap0: AP-ENABLED \n") is None


def test_net_apply_without_daemons_sets_up_only_the_interfaces() -> None:
    full = rendered_plan()
    kept = full.without_daemons().commands
    assert {c[0] for c in full.commands} >= {"hostapd", "dnsmasq", "babeld"}
    assert not {c[0] for c in kept} & {"hostapd", "dnsmasq", "babeld"}
    assert [c for c in full.commands if c[0] not in ("hostapd", "dnsmasq", "babeld")] == \
        list(kept)
    assert any(c[:2] == ("nft", "-f") for c in kept)
    assert any(c[:2] == ("iw", "phy") for c in kept)


def test_the_ap_and_the_mesh_beacon_alike() -> None:
    """One radio doing both must beacon at one interval (the kernel refuses otherwise)."""
    p = rendered_plan()
    assert "beacon_int=100\n" in p.file("hostapd.conf").content
    join = next(c for c in p.commands if c[3:5] == ("mesh", "join"))
    assert join[join.index("beacon-interval") + 1] == "100"
    assert build_plan  # the same renderer the node uses


def test_phone_configuration_prefers_its_node_then_neighbours() -> None:
    text = wpa_supplicant_conf("meshhub lab ab12", ["02:00:00:00:02:00", "02:00:00:00:03:00",
                                                    "02:00:00:00:01:00"], 2412, "/x/ctrl")
    blocks = text.split("network={")[1:]
    assert len(blocks) == 3
    assert "bssid=02:00:00:00:02:00" in blocks[0] and "priority=3" in blocks[0]
    assert "bssid=02:00:00:00:01:00" in blocks[2] and "priority=1" in blocks[2]
    assert all("key_mgmt=NONE" in b and "scan_freq=2412" in b for b in blocks)
    assert "disabled=1" not in blocks[0] and all("disabled=1" in b for b in blocks[1:])
    assert f"ssid={b'meshhub lab ab12'.hex()}" in blocks[0]
    with pytest.raises(LabError):
        wpa_supplicant_conf("x", [], 2412, "/x")


def test_air_table_text() -> None:
    text = render_air(radio_device="mesh0", radio_loss={"42:00:00:00:02:00": 20,
                                                         "42:00:00:00:03:00": 0})
    assert 'hook ingress device "mesh0" priority -500' in text
    assert "ether saddr 42:00:00:00:02:00 numgen random mod 100 < 20 counter drop" in text
    assert "42:00:00:00:03:00" not in text  # 0%: nothing to drop
    assert text.startswith("table netdev mhlab\ndelete table netdev mhlab\n")
    assert "chain" not in render_air(radio_device="mesh0", radio_loss={})
    with pytest.raises(LabError, match="not a MAC address"):
        render_air(radio_device="mesh0", radio_loss={"42:00": 20})


@pytest.mark.root
def test_air_table_loads_and_drops(tmp_path: Path) -> None:
    """The rendered table is accepted by nft on a real interface, and a 100% loss drops
    what arrives (ping over a veth pair between two namespaces)."""
    require_root()
    require_tool("ip", "nft", "busybox")
    a, b = f"mhl-air{secrets.token_hex(2)}a", f"mhl-air{secrets.token_hex(2)}b"
    try:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", a, "link", "add", "m-b", "type", "veth", "peer", "name",
                        "m-a", "netns", b], check=True)
        for ns, dev, addr in ((a, "m-b", "10.99.0.1/24"), (b, "m-a", "10.99.0.2/24")):
            subprocess.run(["ip", "-n", ns, "addr", "add", addr, "dev", dev], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)

        def ping() -> bool:
            return subprocess.run(["ip", "netns", "exec", a, "busybox", "ping", "-c", "1",
                                   "-W", "2", "10.99.0.2"], capture_output=True).returncode == 0

        assert ping()
        from node.lab.air import apply_air

        apply_air(b, render_air(device_loss={"m-a": 100}))
        assert not ping()
        apply_air(b, render_air(device_loss={}))
        assert ping()
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], check=False)


def test_lab_up_names_hostapds_own_line_when_hostapd_refuses(tmp_path: Path) -> None:
    """The real hostapd with a node's rendered configuration, in a namespace of its own
    with no radio: it refuses, and the lab's wait for the access points stops at once with
    one line naming the node, the file and hostapd's own reason."""
    require_root()
    require_tool("hostapd", "unshare")
    conf = tmp_path / "hostapd.conf"
    conf.write_text(rendered_plan().file("hostapd.conf").content.replace(
        "ctrl_interface=/run/hostapd", f"ctrl_interface={tmp_path / 'ctrl'}"), encoding="utf-8")
    refused = subprocess.run(["unshare", "-n", "hostapd", str(conf)], capture_output=True,
                             text=True, timeout=60, check=False)
    assert refused.returncode != 0
    lab = _lab(tmp_path, radio_lab=True, ap_mac="02:00:00:00:02:00")
    lab.node("n2").pids = {"agent": 1}  # "running": its agent started hostapd
    log = tmp_path / "n2" / "run" / "hostapd.log"
    log.parent.mkdir(parents=True)
    log.write_text(refused.stdout + refused.stderr, encoding="utf-8")
    with pytest.raises(LabError) as caught:
        wait_access_points(lab, timeout=60)
    message = str(caught.value)
    reason = message.rsplit("hostapd.conf: ", 1)[-1]
    assert message.startswith(f"n2: hostapd refused {tmp_path / 'n2'}/run/hostapd.conf: ")
    assert "\n" not in message and reason in (refused.stdout + refused.stderr).splitlines()
