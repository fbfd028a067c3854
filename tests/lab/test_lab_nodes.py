"""What makes a lab node complete, checked without root: its node.toml, the residents'
daemons the agent would run, the phone's DHCP script, and who runs the portal."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from node.config import load_config, parse_config
from node.lab.lab import LabNode, LabState
from node.lab.nodeconf import choose_portal_user, node_toml, reachable_by_others
from node.lab.phones import UDHCPC_SCRIPT
from node.mesh.access import access_daemons, is_radio


def lab_config(tmp_path: Path) -> Path:
    node = LabNode("n3", 3, "mhl-abc-n3", "10.42.0.3", str(tmp_path / "n3" / "node.toml"))
    state = LabState("abc", str(tmp_path), "line", 1.0, {"n3": node}, [], portal_user="nobody")
    path = tmp_path / "n3" / "node.toml"
    path.parent.mkdir()
    path.write_text(node_toml(node, state, ["n2", "n4"], []), encoding="utf-8")
    return path


def test_a_lab_node_is_configured_like_a_real_one(tmp_path: Path) -> None:
    cfg = load_config(lab_config(tmp_path))
    assert cfg.clients.dhcp and cfg.gate.enabled and cfg.mesh.routing
    assert cfg.gate.portal_user == "nobody" and cfg.gate.portal_port == cfg.portal.port
    assert cfg.gate.socket == str(tmp_path / "n3" / "run" / "gate.sock")
    assert cfg.clients.subnet == "10.64.3.0/24"


def test_the_agent_runs_dnsmasq_and_hostapd_only_on_a_radio(tmp_path: Path) -> None:
    cfg = load_config(lab_config(tmp_path))
    sys_root = tmp_path / "sys"
    (sys_root / "class" / "net" / "ap0").mkdir(parents=True)  # a bridge: no phy80211
    assert not is_radio("ap0", sys_root)
    daemons = access_daemons(cfg, sys_root)
    assert [d.name for d in daemons] == ["dnsmasq"]
    assert "--keep-in-foreground" in daemons[0].argv
    assert f"--conf-file={tmp_path / 'n3' / 'run' / 'dnsmasq.conf'}" in daemons[0].argv
    (sys_root / "class" / "net" / "ap0" / "phy80211").mkdir()
    assert [d.name for d in access_daemons(cfg, sys_root)] == ["hostapd", "dnsmasq"]
    laptop = parse_config('[node]\nname = "laptop"\n', Path("node.toml"))
    assert access_daemons(laptop, sys_root) == []  # 'make run': no DHCP server


def test_an_uplink_node_also_runs_the_walled_resolver(tmp_path: Path) -> None:
    path = lab_config(tmp_path)
    path.write_text(path.read_text().replace("[clients]", '[clients]\nuplink_interface = "up0"'))
    daemons = access_daemons(load_config(path), tmp_path / "sys")
    assert [d.name for d in daemons] == ["dnsmasq", "dnsmasq-walled"]
    assert f"--conf-file={tmp_path / 'n3' / 'run' / 'dnsmasq-walled.conf'}" in daemons[1].argv


def test_the_phone_script_configures_wlan0_and_records_the_lease(tmp_path: Path) -> None:
    out = tmp_path / "lease.json"
    script = tmp_path / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT.format(out=out), encoding="utf-8")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "ip").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'ip.log'}\n")
    (fake_bin / "ip").chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "interface": "wlan0", "ip": "10.64.3.50",
           "mask": "24", "router": "10.64.3.1", "dns": "10.64.3.1", "serverid": "10.64.3.1",
           "lease": "3600", "opt114": "687474703a2f2f31302e36342e332e312f6170692f63617074697665"}
    subprocess.run(["/bin/sh", str(script), "bound"], env=env, check=True)
    lease = json.loads(out.read_text())
    assert lease["ip"] == "10.64.3.50" and lease["router"] == "10.64.3.1"
    commands = (tmp_path / "ip.log").read_text()
    assert "address add 10.64.3.50/24 dev wlan0" in commands
    assert "route replace default via 10.64.3.1 dev wlan0" in commands


def test_the_portal_runs_as_nobody_only_where_nobody_can_reach(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    if not reachable_by_others(tmp_path):  # pytest's own folders may be private
        assert choose_portal_user(open_dir, None) == "root"
    else:
        assert choose_portal_user(open_dir, None) == "nobody"
    assert choose_portal_user(private / "lab", None) == "root"
    assert choose_portal_user(private / "lab", "root") == "root"
