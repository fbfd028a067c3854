"""dnsmasq rendered by meshhub, for real: a phone namespace gets its lease through the gate."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.netlab import NODE_TOML, Lab, apply_gate, start_dnsmasq
from node.config import parse_config
from tests.conftest import require_tool

pytestmark = pytest.mark.root

SCRIPT = """#!/bin/sh
[ "$1" = bound ] || exit 0
printf 'ip=%s\\nrouter=%s\\ndns=%s\\nlease=%s\\nopt114=%s\\n' \\
  "$ip" "$router" "$dns" "$lease" "$opt114" > "{out}"
"""


def test_phone_gets_a_lease_with_option_114_and_the_hub_name(lab: Lab, tmp_path: Path) -> None:
    require_tool("dnsmasq", "busybox", "nft")
    node, phone = lab.netns("node"), lab.netns("phone")
    lab.veth(node, "ap0", phone, "wlan0", mac_b="02:00:00:00:00:51")
    lab.run(node, "ip", "address", "add", "10.64.7.1/24", "dev", "ap0")

    cfg = parse_config(NODE_TOML)
    apply_gate(lab, node, cfg, tmp_path / "etc")  # DHCP and DNS pass the gate
    start_dnsmasq(lab, node, tmp_path / "etc", tmp_path,
                  leases=(cfg.data_dir / "dnsmasq.leases", tmp_path / "leases"))

    out = tmp_path / "lease.env"
    script = tmp_path / "udhcpc.sh"
    script.write_text(SCRIPT.format(out=out))
    script.chmod(0o755)
    try:
        lab.run(phone, "busybox", "udhcpc", "-i", "wlan0", "-n", "-q", "-t", "5", "-T", "1",
                "-O", "114", "-s", str(script), timeout=30)
    except subprocess.CalledProcessError as exc:
        log = (tmp_path / "dnsmasq.log").read_text()
        raise AssertionError(f"no lease: {exc.stderr}\n{log}") from exc
    lease = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert 100 <= int(lease["ip"].rsplit(".", 1)[1]) <= 120
    assert lease["ip"].startswith("10.64.7.")
    assert lease["router"] == "10.64.7.1"
    assert lease["dns"].strip() == "10.64.7.1"
    assert lease["lease"] == "3600"
    assert bytes.fromhex(lease["opt114"]).decode() == "http://10.64.7.1/api/captive"

    # DNS from the unaccepted phone: the hub's names and (no uplink) every other name
    # answer with the portal address.
    lab.run(phone, "ip", "address", "add", f"{lease['ip']}/24", "dev", "wlan0")
    for name in ("hub.mesh", "lab-node.mesh", "connectivitycheck.gstatic.com"):
        assert lab.wait_for(f"an answer for {name}",
                            lambda n=name: lab.dns_a(phone, "10.64.7.1", n)) == "10.64.7.1"
