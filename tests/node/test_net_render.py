"""Each rendered file, checked on its text and by the real tool where one exists."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from node.config import parse_config
from node.errors import ConfigError
from node.net import build_plan
from node.net.render_hostapd import HOSTAPD_KEYS, hostapd_string
from node.net.render_mesh import ibss_bssid
from tests.conftest import require_root, require_tool

BASE = '[node]\nname = "elm"\n[mesh]\naddress = "10.42.0.7"\n[clients]\nsubnet = "10.64.7.0/24"\n'
UPLINK = BASE + 'uplink_interface = "eth0"\n'
GATED = BASE + '[gate]\nenabled = true\nsocket = "/run/meshhub/gate.sock"\n'


def plan(toml: str = BASE):  # type: ignore[no-untyped-def]
    return build_plan(parse_config(toml))


def test_gate_text_has_the_bypass_closing_rules() -> None:
    text = plan().file("gate.nft").content
    assert text.startswith("#!/usr/sbin/nft -f")
    assert "table inet meshhub\nflush table inet meshhub\n" in text
    assert "type ipv4_addr . ether_addr" in text and "timeout 1440m" in text
    assert "ip saddr . ether saddr != @allowed" in text
    assert 'redirect to :80' in text
    assert "th dport { 53, 853 }" in text
    assert 'meta nfproto ipv6 counter name "ipv6_dropped" drop' in text
    assert "ip daddr 10.64.0.0/10" in text  # residents of every node, not only this one
    assert "masquerade" not in text  # no uplink, no NAT
    # Accepted residents reach the internet only over the mesh (towards a gateway), never
    # the mesh's own addresses that way.
    forwarded = text.split("chain from_clients")[1].split("forward_dropped")[0]
    assert forwarded.index("@allowed counter name") < forwarded.index(
        'ip daddr != 10.42.0.0/16 oifname { "mesh0" } accept')
    assert 'oifname "' not in forwarded.replace('oifname "wlan0"', "")


def test_agent_api_is_always_a_management_port() -> None:
    text = plan(BASE + '[agent]\nport = 9999\n[gate]\nmanagement_ports = [22, 2222]\n')\
        .file("gate.nft").content
    assert 'tcp dport { 22, 2222, 9999 } counter name "management_dropped" drop' in text
    assert "ip daddr 10.42.0.0/16 tcp dport { 22, 2222, 9999 }" in text


def test_gate_with_uplink_forwards_and_masquerades_only_there() -> None:
    text = plan(UPLINK).file("gate.nft").content
    assert 'oifname "eth0" accept' in text
    assert 'oifname "eth0" ip saddr { 10.64.0.0/10, 10.42.0.0/16 } masquerade' in text


def test_dns_servers_make_a_node_without_uplink_forward_names_behind_the_wall() -> None:
    # A node without an uplink forwards accepted residents' names over the mesh's default
    # route; strangers get the walled resolver, exactly as on a gateway.
    forwarding = plan(BASE + 'dns_servers = ["192.0.2.53", "192.0.2.54"]\n')
    conf = forwarding.file("dnsmasq.conf").content
    assert "no-resolv\nserver=192.0.2.53\nserver=192.0.2.54\nstop-dns-rebind" in conf
    assert "address=/#/" not in conf and "resolv-file" not in conf
    assert "dnsmasq-walled.conf" in [f.path.name for f in forwarding.files]
    gate = forwarding.file("gate.nft").content
    assert 'counter name "dns_walled" redirect to :5053' in gate
    assert "masquerade" not in gate  # no uplink of its own
    gateway = plan(UPLINK).file("dnsmasq.conf").content
    assert "resolv-file=/etc/resolv.conf" in gateway and "server=" not in gateway
    offline = plan()
    assert "address=/#/10.64.7.1" in offline.file("dnsmasq.conf").content
    assert "dnsmasq-walled.conf" not in [f.path.name for f in offline.files]
    with pytest.raises(ConfigError, match=r"clients.dns_servers: item 1 \('dns.example'\)"):
        parse_config('[clients]\ndns_servers = ["dns.example"]\n')


def test_portal_on_another_port_still_gets_port_80() -> None:
    text = plan(BASE + "[gate]\nportal_port = 8080\n").file("gate.nft").content
    assert "ip daddr 10.64.7.1 tcp dport 80 redirect to :8080" in text
    assert "ip daddr 10.64.7.1 tcp dport { 443, 8080 } accept" in text


def test_addresses_are_bound_to_leases_only_when_the_gate_hears_of_them() -> None:
    gated, plain = plan(GATED), plan()
    text = gated.file("gate.nft").content
    assert "table arp meshhub_arp\nflush table arp meshhub_arp\n" in text
    assert ("arp saddr ip 0.0.0.0 accept\n\t\tarp saddr ip . arp saddr ether != @leased "
            'counter name "arp_spoofed_dropped" drop') in text
    assert text.count('ip saddr . ether saddr != @leased counter name "spoofed_dropped"') == 2
    assert text.index("udp dport 67 accept") < text.index("!= @leased counter name \"spoofed")
    assert "\nno-ping\n" in gated.file("dnsmasq.conf").content  # its replies would be dropped
    assert "no-ping" not in plain.file("dnsmasq.conf").content
    hook = gated.file("lease-hook")
    assert hook.mode == 0o755 and "-m node.gate.leases --socket /run/meshhub/gate.sock" \
        in hook.content
    conf = gated.file("dnsmasq.conf").content
    assert f"dhcp-script={hook.path}\nscript-on-renewal\n" in conf
    # Without the gate's socket nothing would feed the sets: no drops, no hook.
    text = plain.file("gate.nft").content
    assert "!= @leased" not in text and "dhcp-script" not in plain.file("dnsmasq.conf").content
    assert "lease-hook" not in [f.path.name for f in plain.files]


def test_dhcp_is_one_lease_per_device_and_rate_limited_per_mac() -> None:
    conf = plan().file("dnsmasq.conf").content
    assert "dhcp-ignore-clid\n" in conf and "dhcp-lease-max=241\n" in conf
    text = plan().file("gate.nft").content
    assert ("udp dport 67 update @dhcp_rate { ether saddr limit rate over 10/minute burst 10 "
            'packets } counter name "dhcp_limited" drop\n\t\tudp dport 67 accept') in text


@pytest.mark.parametrize("toml", [BASE, UPLINK, GATED,
                                  BASE + "[gate]\nmanagement_ports = [22, 9000]\n"])
def test_gate_passes_nft_check_in_a_fresh_namespace(toml: str, tmp_path: Path) -> None:
    require_root()
    require_tool("nft", "ip")
    file = tmp_path / "gate.nft"
    file.write_text(plan(toml).file("gate.nft").content)
    ns = f"mh-nftc-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        result = subprocess.run(["ip", "netns", "exec", ns, "nft", "-c", "-f", str(file)],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_dnsmasq_offline_answers_every_name_with_the_portal() -> None:
    text = plan().file("dnsmasq.conf").content
    assert "dhcp-range=10.64.7.10,10.64.7.250,255.255.255.0,60m" in text
    assert "dhcp-option-force=114,http://10.64.7.1/api/captive" in text
    assert "address=/hub.mesh/10.64.7.1" in text and "address=/elm.mesh/10.64.7.1" in text
    assert "no-resolv" in text and "address=/#/10.64.7.1" in text
    assert "\nenable-ra" not in text and "dhcp-range=::" not in text


def test_dnsmasq_with_uplink_forwards_real_dns() -> None:
    text = plan(UPLINK).file("dnsmasq.conf").content
    assert "no-resolv" not in text and "address=/#/" not in text
    assert "resolv-file=/etc/resolv.conf" in text and "stop-dns-rebind" in text


def test_uplink_node_walls_dns_of_devices_that_have_not_accepted() -> None:
    uplinked = plan(UPLINK)
    walled = uplinked.file("dnsmasq-walled.conf").content
    assert "listen-address=10.64.7.1\nport=5053\n" in walled
    assert "no-resolv\n" in walled and "address=/#/10.64.7.1\n" in walled
    assert "server=" not in walled and "resolv-file" not in walled and "dhcp-range" not in walled
    text = uplinked.file("gate.nft").content
    nat = text.split("chain prerouting_nat")[1].split("\n\t}")[0]
    assert ('iifname "wlan0" ip daddr 10.64.7.1 meta l4proto { tcp, udp } th dport 53 '
            'ip saddr . ether saddr != @allowed counter name "dns_walled" redirect to :5053') in nat
    assert "ip daddr 10.64.7.1 meta l4proto { tcp, udp } th dport { 53, 5053 } accept" in text
    started = [c for c in uplinked.commands if c[0] == "dnsmasq"]
    assert [c[1].rsplit("/", 1)[1] for c in started] == ["dnsmasq.conf", "dnsmasq-walled.conf"]
    # No uplink: nothing is forwarded anyway, so no second listener and no redirect.
    offline = plan()
    assert "dnsmasq-walled.conf" not in [f.path.name for f in offline.files]
    assert "dns_walled\" redirect" not in offline.file("gate.nft").content
    # Open mode lets everyone through, DNS included ...
    opened = plan(UPLINK + "[gate]\nmode = \"open\"\n").file("gate.nft").content
    assert "@allowed counter name \"dns_walled\"" not in opened
    # ... except a device that has not read an emergency broadcast in force.
    assert [line.strip() for line in opened.splitlines() if "redirect to :5053" in line] == [
        "iifname @broadcast ip saddr . ether saddr != @notice_read ip daddr 10.64.7.1 "
        'meta l4proto { tcp, udp } th dport 53 counter name "dns_walled" redirect to :5053']


@pytest.mark.parametrize("toml", [BASE, UPLINK, GATED])
def test_dnsmasq_accepts_the_file(toml: str, tmp_path: Path) -> None:
    require_tool("dnsmasq")
    for planned in plan(toml).files:
        if not planned.path.name.startswith("dnsmasq"):
            continue
        file = tmp_path / planned.path.name
        file.write_text(planned.content)
        result = subprocess.run(["dnsmasq", "--test", f"--conf-file={file}"],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0 and "syntax check OK" in result.stderr, result.stderr


def hostapd_keys(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


def test_hostapd_text_uses_only_known_keys() -> None:
    keys = hostapd_keys(plan().file("hostapd.conf").content)
    assert set(keys) <= HOSTAPD_KEYS
    assert keys["ssid2"] == 'P"Neighbourhood Wi-Fi"'
    assert keys["country_code"] == "DE" and keys["channel"] == "1"
    assert keys["ap_isolate"] == "1" and keys["wpa"] == "0"
    # On a node hostapd runs as the agent's user, which may not chown its socket folder to a
    # group: hostapd exited at every start when this key was set (seen booting the image).
    assert "ctrl_interface_group" not in keys


def test_hostapd_ssid_cannot_inject_lines() -> None:
    assert hostapd_string('a"b\\c\nchannel=14') == 'P"a\\"b\\\\c\\x0achannel=14"'
    assert hostapd_string("Café") == 'P"Caf\\xc3\\xa9"'


def test_hostapd_parses_the_file_and_fails_only_at_the_radio(tmp_path: Path) -> None:
    """hostapd has no check-only flag: run it where no radio exists (a fresh namespace)
    and check that it got past the configuration and stopped at the driver."""
    require_root()
    require_tool("hostapd", "ip")
    file = tmp_path / "hostapd.conf"
    file.write_text(plan(BASE + '[wifi]\nssid = "Café \\"Elm\\""\n').file("hostapd.conf").content)
    ns = f"mh-hapd-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        result = subprocess.run(["ip", "netns", "exec", ns, "hostapd", str(file)],
                                capture_output=True, text=True, timeout=20, check=False)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "errors found in configuration file" not in output, output
    assert "unknown configuration item" not in output, output
    assert "Failed to initialize driver" in output or "nl80211" in output, output


def test_mesh_80211s_and_ibss_commands() -> None:
    mesh = plan().commands
    assert ("iw", "phy", "phy0", "interface", "add", "mesh0", "type", "mp") in mesh
    assert ("iw", "dev", "mesh0", "mesh", "join", "meshhub", "freq", "2412", "HT20",
            "beacon-interval", "100", "mesh_fwding=0") in mesh
    cfg = parse_config('[node]\nname = "elm"\n[mesh]\naddress = "10.42.0.7"\nmode = "ibss"\n'
                       'channel = 6\n')
    commands = build_plan(cfg).commands
    assert ("iw", "dev", "mesh0", "ibss", "join", "meshhub", "2437", "HT20", "fixed-freq",
            ibss_bssid("meshhub")) in commands
    assert int(ibss_bssid("meshhub").split(":")[0], 16) & 0x03 == 0x02  # local, unicast
    script = build_plan(cfg).file("mesh-up.sh").content
    assert script.startswith("#!/bin/sh") and "set -eu" in script
    assert "[ -e /sys/class/net/mesh0 ] || iw phy phy0 interface add mesh0 type ibss" in script


def test_babeld_text_announces_only_its_own_prefixes() -> None:
    text = plan(BASE.replace('[mesh]\n', '[mesh]\nwired_interfaces = ["eth1"]\n')).file(
        "babeld.conf").content
    assert "interface eth1 type wired" in text
    assert "interface mesh0 type wireless hello-interval 4 update-interval 16 rxcost 256" in text
    assert "redistribute local ip 10.42.0.7/32 allow" in text
    assert "redistribute ip 10.64.7.0/24 eq 24 allow" in text
    # A restored gateway's route is taken within seconds, not babeld's 20-24 s.
    assert "smoothing-half-life 1" in text.splitlines()
    assert text.rstrip().endswith("redistribute local deny\nredistribute deny")
    assert "0.0.0.0/0" not in text
    # A gateway announces the default route only through the agent's announcement route.
    uplink = plan(UPLINK).file("babeld.conf").content
    assert "redistribute proto 201 ip 0.0.0.0/0 eq 0 allow" in uplink
    assert uplink.index("proto 201") < uplink.index("redistribute deny")
    backup = plan(UPLINK + "uplink_cost = 2048\n").file("babeld.conf").content
    assert "redistribute proto 201 ip 0.0.0.0/0 eq 0 metric 2048" in backup


def test_gate_is_closed_before_the_access_point_opens() -> None:
    commands = [c[0] for c in plan().commands]
    assert commands.index("nft") < commands.index("hostapd")
    assert commands.index("nft") < commands.index("dnsmasq")


def test_cake_shares_the_uplink_fairly_only_when_its_speed_is_set() -> None:
    assert "uplink-shaping.sh" not in [f.path.name for f in plan(UPLINK).files]
    shaped = plan(UPLINK + "uplink_upload_kbit = 8000\nuplink_download_kbit = 40000\n")
    script = shaped.file("uplink-shaping.sh")
    assert script.mode == 0o755
    lines = script.content.splitlines()
    assert "tc qdisc replace dev eth0 root cake bandwidth 8000kbit besteffort dual-srchost nat" \
        in lines
    assert "[ -e /sys/class/net/ifb-mh0 ] || ip link add ifb-mh0 type ifb" in lines
    assert ("tc filter replace dev eth0 parent ffff: protocol all prio 1 handle 1 matchall "
            "action mirred egress redirect dev ifb-mh0") in lines
    assert ("tc qdisc replace dev ifb-mh0 root cake bandwidth 40000kbit besteffort "
            "dual-dsthost nat ingress") in lines
    assert shaped.commands[-1] == ("sh", str(script.path))
    upload_only = plan(UPLINK + "uplink_upload_kbit = 8000\n").file("uplink-shaping.sh")
    assert "ifb" not in upload_only.content and "dual-srchost" in upload_only.content
    # No uplink: nothing to share, whatever the speeds say.
    assert "uplink-shaping.sh" not in [f.path.name for f in
                                       plan(BASE + "uplink_upload_kbit = 8000\n").files]


def test_config_check_warns_about_an_uplink_without_a_speed(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from node.cli import cli

    path = tmp_path / "node.toml"
    path.write_text(UPLINK)
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 0 and result.stdout.endswith(": ok\n")
    assert "warning: clients.uplink_interface is 'eth0' but clients.uplink_upload_kbit and " \
        "clients.uplink_download_kbit are 0" in result.stderr
    path.write_text(UPLINK + "uplink_upload_kbit = 8000\nuplink_download_kbit = 40000\n")
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 0 and "warning" not in result.stderr


def test_a_device_cap_is_a_policer_per_address_for_traffic_outside_the_mesh() -> None:
    """Off by default (the gate's text is as before); set, one ``limit`` meter per address
    in each direction, never for traffic within the mesh (the hub, other nodes)."""
    assert "device_" not in plan().file("gate.nft").content
    text = plan(BASE + "device_download_kbit = 2000\ndevice_upload_kbit = 1000\n") \
        .file("gate.nft").content
    mesh = parse_config(BASE).mesh.mesh_range
    down = (f"ip saddr != {mesh} update @device_down {{ ip daddr limit rate over 250000 "
            'bytes/second burst 62500 bytes } counter name "device_cap_dropped" drop')
    up = (f"ip daddr != {mesh} update @device_up {{ ip saddr limit rate over 125000 "
          'bytes/second burst 31250 bytes } counter name "device_cap_dropped" drop')
    to_clients = text[text.index("chain to_clients {"):].splitlines()
    assert to_clients[1].strip() == down  # before established connections are let through
    from_clients = text[text.index("chain from_clients {"):text.index("chain to_clients {")]
    # before the ways out (the uplink, the mesh's default route) accept the packet
    assert up in from_clients and from_clients.index(up) < from_clients.index("oifname {")
    assert "set device_down {" in text and "set device_up {" in text
    assert "counter device_cap_dropped" in text
    only_down = plan(BASE + "device_download_kbit = 2000\n").file("gate.nft").content
    assert "@device_down" in only_down and "device_up" not in only_down


def test_a_device_cap_below_a_usable_speed_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(BASE + "device_download_kbit = 10\n")
    assert "clients.device_download_kbit" in str(refused.value)
    assert "must be 0 (no cap) or at least 64 kbit/s" in str(refused.value)
