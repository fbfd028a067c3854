"""The node boots for real: an image this checkout built, first boot in QEMU, checked from outside.

One boot per session (TCG is slow); every check reads the running node
through the QEMU guest agent or the forwarded hub port. The last test powers
the node off and boots it a second time (the node stays up for the update
tests, test_node_updates.py). See docs/images.md, "Try your image before you
flash it" and "Tested".
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from tests.vm.conftest import BootedNode

# One boot shared by every test; the last step boots the same disk a second time and
# powers it off (a machine left running would be a process leaked by that test).
pytestmark = [pytest.mark.timeout(2400), pytest.mark.scenario]

#: The daemons the agent runs, and the unit every one of them must run under.
AGENT_DAEMONS = ("babeld", "dnsmasq", "hostapd")
#: CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13).
AGENT_CAPS = (1 << 10) | (1 << 12) | (1 << 13)


def test_first_boot_completes_once(node_vm: BootedNode) -> None:
    journal = node_vm.firstboot_journal
    assert f"done: meshhub {node_vm.image.version}" in journal, journal
    assert "FAILED" not in journal
    # The image carries the venv ready-made (image build): first boot installs nothing.
    assert "installing meshhub" not in journal, journal
    assert f"meshhub {node_vm.image.version} is installed in" in journal, journal
    done = node_vm.sh("cat /var/lib/meshhub/firstboot.done")
    assert done.startswith(node_vm.image.version + " ")
    show = node_vm.sh("systemctl show meshhub-firstboot -p Result -p ExecMainStatus")
    assert "Result=success" in show and "ExecMainStatus=0" in show
    # The card's key went into the node and off the boot partition.
    assert node_vm.sh("test ! -e /boot/firmware/meshhub/identity.key && "
                      "stat -c %a:%U:%G /var/lib/meshhub/identity.key").strip() == \
        "640:meshhub:meshhub"
    assert node_vm.sh("hostname").strip() == node_vm.image.name


def test_system_is_running_with_no_failed_unit(node_vm: BootedNode) -> None:
    failed = node_vm.vm.run("systemctl --failed --no-legend --plain").stdout  # type: ignore[attr-defined]
    assert node_vm.state == "running", f"is-system-running: {node_vm.state}; failed: {failed}"
    assert failed.strip() == ""


def test_units_are_active_and_hardened(node_vm: BootedNode) -> None:
    for unit in ("meshhub-agent", "meshhub-portal", "nginx"):
        assert node_vm.sh(f"systemctl is-active {unit}").strip() == "active", unit
    for unit in ("babeld", "dnsmasq", "hostapd"):  # Debian's own: masked, the agent runs them
        state = node_vm.vm.run(f"systemctl is-enabled {unit}").stdout.strip()  # type: ignore[attr-defined]
        assert state in ("masked", "masked-runtime", ""), f"{unit}: {state}"
    procs = node_vm.sh("ps -e -o pid=,user=,comm=,cgroup=")
    running = {fields[2]: (int(fields[0]), fields[1])
               for fields in map(str.split, procs.splitlines())
               if len(fields) >= 4 and fields[3].endswith("/meshhub-agent.service")}
    for daemon in AGENT_DAEMONS:
        assert daemon in running, f"{daemon} not in meshhub-agent.service: {procs}"
        pid, user = running[daemon]
        assert user == "meshhub", f"{daemon} runs as {user}"
        status = node_vm.sh(f"cat /proc/{pid}/status")
        effective = int(re.search(r"CapEff:\s+([0-9a-f]+)", status).group(1), 16)  # type: ignore[union-attr]
        assert effective & ~AGENT_CAPS == 0, f"{daemon} has capabilities {effective:x}"
    portal = node_vm.sh("systemctl show -p MainPID --value meshhub-portal").strip()
    assert node_vm.sh(f"stat -c %U /proc/{portal}").strip() == "meshhub-portal"
    assert re.search(r"CapEff:\s+0+\n", node_vm.sh(f"cat /proc/{portal}/status"))
    for unit, most in (("meshhub-portal", 2.0), ("meshhub-agent", 3.0)):
        score = node_vm.sh(f"systemd-analyze security {unit} --no-pager | tail -1")
        value = float(re.search(r"exposure level .*?: ([0-9.]+)", score).group(1))  # type: ignore[union-attr]
        assert value <= most, f"{unit}: {score}"


def test_hub_answers_through_nginx(node_vm: BootedNode) -> None:
    port = node_vm.vm.port  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as answer:
        body = answer.read().decode("utf-8", "replace")
        assert answer.status == 200
        assert answer.headers.get("Server", "").startswith("nginx")
    assert node_vm.image.node_toml["node"]["community"] in body  # type: ignore[index]


def test_gate_is_loaded_before_the_access_point_opens(node_vm: BootedNode) -> None:
    """The agent's journal, at each of its starts in this boot: its API, then the gate's
    ruleset loaded, then hostapd started (the agent logs these few lines at INFO,
    node.cli.daemon.JOURNAL_LOGGERS); and the gate's table is in the kernel."""
    journal = node_vm.sh("journalctl -b --no-pager -o short-monotonic -u meshhub-agent")
    starts = journal.split("meshhub.agent: agent API on ")[1:]
    assert starts, journal
    for start in starts:
        lines = start.splitlines()
        gate = next((i for i, line in enumerate(lines) if "gate: ruleset loaded" in line), None)
        ap = next((i for i, line in enumerate(lines) if "hostapd: starting" in line), None)
        assert gate is not None and ap is not None and gate < ap, journal
        stamps = [float(re.match(r"\[\s*([0-9.]+)\]", lines[i]).group(1))  # type: ignore[union-attr]
                  for i in (gate, ap)]
        assert stamps == sorted(stamps), journal
    tables = node_vm.sh("nft list tables")
    assert "inet meshhub" in tables, tables
    ssid = node_vm.image.node_toml["wifi"]["ssid"]  # type: ignore[index]
    status = node_vm.sh("iw dev")
    assert f"ssid {ssid}" in status and "type AP" in status, status


def test_health_names_the_registered_node_and_its_key(node_vm: BootedNode) -> None:
    listen = node_vm.image.node_toml["agent"]["listen"]  # type: ignore[index]
    from node.config.schema import settings_by_key

    port = settings_by_key()["agent.port"].default
    text = node_vm.sh(f"busybox wget -q -O - http://{listen}:{port}/api/health")
    health = json.loads(text)
    node = health["node"]
    assert node["name"] == node_vm.image.name
    assert node_vm.image.public_key in json.dumps(node), node


#: Runs inside the phone's namespace with the node's own Python (for node.captive_probes):
#: every OS probe before Connect, Connect as the sign-in sheet does, every probe after.
PHONE_SCRIPT = r"""
import http.client, json, re, sys
from node.captive_probes import PROBES
portal = sys.argv[1]
def get(path, host=None, method="GET", body=None, headers=None):
    conn = http.client.HTTPConnection(portal, 80, timeout=60)
    conn.request(method, path, body=body, headers={"Host": host or portal, **(headers or {})})
    answer = conn.getresponse()
    return (answer.status, {k.lower(): v for k, v in answer.getheaders()},
            answer.read().decode("utf-8", "replace"))
out = {"before": [], "after": []}
for probe in PROBES:
    status, headers, _ = get(probe.path, probe.host, headers={"User-Agent": probe.user_agent})
    out["before"].append([probe.system, status, headers.get("location")])
status, headers, body = get("/welcome")
token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', body).group(1)
cookie = headers["set-cookie"].split(";", 1)[0]
status, headers, _ = get("/welcome", method="POST", body="csrf_token=" + token,
                         headers={"Cookie": cookie,
                                  "Content-Type": "application/x-www-form-urlencoded"})
out["connect"] = [status, headers.get("location")]
for probe in PROBES:
    status, _, body = get(probe.path, probe.host, headers={"User-Agent": probe.user_agent})
    out["after"].append([probe.system, probe.succeeds(status, body), status])
print(json.dumps(out))
"""

UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
bound|renew)
    ip address replace "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "$router"
    env >/var/tmp/phone/lease;;
esac
"""


def test_a_phone_associates_gets_its_lease_and_passes_the_probes(node_vm: BootedNode) -> None:
    """A second simulated radio in its own namespace is a resident's phone.

    Its files are in /var/tmp: Debian's initramfs mounts /run noexec, where udhcpc
    could not run its script (the lease was acknowledged, and no file written)."""
    import base64

    ssid = node_vm.image.node_toml["wifi"]["ssid"]  # type: ignore[index]
    files = {"/var/tmp/phone/wpa.conf": f'network={{\n ssid="{ssid}"\n key_mgmt=NONE\n}}\n',
             "/var/tmp/phone/udhcpc.sh": UDHCPC_SCRIPT, "/var/tmp/phone/phone.py": PHONE_SCRIPT}
    setup = ["mkdir -p /var/tmp/phone"]
    for path, text in files.items():
        data = base64.b64encode(text.encode()).decode()
        setup.append(f"echo {data} | base64 -d >{path}")
    setup += ["chmod 755 /var/tmp/phone/udhcpc.sh", "ip netns add phone",
              "iw phy phy1 set netns name phone", "ip -n phone link set wlan1 up",
              "ip netns exec phone wpa_supplicant -B -i wlan1 -c /var/tmp/phone/wpa.conf "
              "-P /var/tmp/phone/wpa.pid -f /var/tmp/phone/wpa.log"]
    node_vm.sh(" && ".join(setup))
    try:
        # Associated: wpa_supplicant's own log says so (bounded wait inside the node).
        node_vm.sh("for i in $(seq 120); do grep -q CTRL-EVENT-CONNECTED /var/tmp/phone/wpa.log "
                   "&& exit 0; sleep 0.5; done; cat /var/tmp/phone/wpa.log; exit 1", timeout=120)
        node_vm.sh("ip netns exec phone busybox udhcpc -i wlan1 -n -q -t 20 -O 114 "
                   "-s /var/tmp/phone/udhcpc.sh", timeout=120)
        lease = dict(line.split("=", 1) for line in
                     node_vm.sh("cat /var/tmp/phone/lease").splitlines() if "=" in line)
        portal = lease["router"]
        captive = bytes.fromhex(lease["opt114"]).decode()
        assert captive == f"http://{portal}/api/captive", lease
        out = json.loads(node_vm.sh("ip netns exec phone /opt/meshhub/current/bin/python "
                                    f"/var/tmp/phone/phone.py {portal}", timeout=300))
        welcome = f"http://{portal}/welcome"
        assert all(status == 302 and location == welcome
                   for _system, status, location in out["before"]), out["before"]
        assert out["connect"] == [303, "/connected"], out
        assert all(ok for _system, ok, _status in out["after"]), out["after"]
    finally:
        node_vm.vm.run("kill $(cat /var/tmp/phone/wpa.pid) 2>/dev/null; "  # type: ignore[attr-defined]
                       "ip netns del phone; rm -rf /var/tmp/phone")


def test_the_uplink_is_shared_fairly_among_phones(node_vm: BootedNode) -> None:
    """CAKE, applied by the node's own agent, keeps nine phones' small pages quick while a
    tenth downloads, and shares the line evenly among ten downloading phones, two of them
    over four connections, and among the same ten uploading; the same runs with no speed
    set (CAKE off, the modem's queues) are the reference (tests/vm/uplink_fair.py;
    figures in docs/uplink.md)."""
    from tests.vm.uplink_fair import LOADED, RATE_TOLERANCE, SHAPED_KBIT, measure

    figures = measure(node_vm)
    print("\n" + "\n".join(figures.lines()) + "\n" + figures.cake_qdisc)
    assert figures.fairness == (f"CAKE, fair per device: upload {SHAPED_KBIT} kbit/s, "
                                f"download {SHAPED_KBIT} kbit/s")
    assert "dual-dsthost nat" in figures.cake_qdisc and "dual-srchost nat" in figures.cake_qdisc, \
        figures.cake_qdisc
    # The image's networkd leaves the uplink cable and CAKE's ifb device to the agent.
    assert figures.networkd.get("up0") == figures.networkd.get("ifb-mh0") == "unmanaged", \
        figures.networkd
    cake, without = figures.with_cake, figures.without
    # With ten phones downloading, CAKE's shaper runs at its rate: what it sent plus what
    # it dropped (in ingress mode a drop counts against the rate, docs/uplink.md).
    ten = cake["ten greedy"]
    assert abs(ten.cake_shaped_kbit / SHAPED_KBIT - 1) <= RATE_TOLERANCE, figures.lines()
    # One greedy phone, nine light ones: the line loaded, their pages within twice their
    # idle time (the nine alone, measured just before).
    light = cake["one greedy"]
    assert light.cake_shaped_kbit >= LOADED * SHAPED_KBIT, figures.lines()
    assert None not in light.latencies_ms and light.p95_ms() <= 2 * cake["idle"].p95_ms(), \
        figures.lines()
    # Ten greedy phones: an even share, whatever each one's number of connections.
    assert ten.jain >= 0.9, figures.lines()
    # The reference: without CAKE the modem's queue decides; both targets are missed.
    assert without["one greedy"].p95_ms() > 2 * without["idle"].p95_ms(), figures.lines()
    assert without["ten greedy"].jain < ten.jain, figures.lines()
    # Uploads: the same ten phones, CAKE on the uplink's own queue (dual-srchost).
    uploads = cake["ten uploading"]
    assert uploads.jain >= 0.9 and without["ten uploading"].jain < uploads.jain, \
        figures.lines()


def test_second_boot_does_not_run_first_boot_again(node_vm: BootedNode) -> None:
    """Power off, boot the same disk again: first boot is skipped, everything comes back.

    The story's last step (``scenario``); the node stays up for other modules' tests."""
    second = node_vm.boot_again()
    assert second.state == "running"
    show = second.sh("systemctl show meshhub-firstboot -p ActiveState -p ConditionResult")
    assert "ConditionResult=no" in show, show
    journal = second.sh("journalctl -b --no-pager -o cat -u meshhub-firstboot")
    assert "meshhub-firstboot:" not in journal, journal  # the script's lines: not run
    for unit in ("meshhub-agent", "meshhub-portal", "nginx"):
        assert second.sh(f"systemctl is-active {unit}").strip() == "active"
