"""Residents' phones in the lab: a namespace on a node's access point, addressed by DHCP.

A node's access point is a bridge ``ap0`` in the node's namespace, standing in for the
radio (a namespace cannot hold one; hostapd is not run). Each phone is a namespace
whose ``wlan0`` is one end of a veth pair; the other end, ``ap0pN``, is a port of the
bridge marked ``isolated`` (as hostapd's ``ap_isolate`` keeps Wi-Fi clients apart).
The phone gets its address, router and DNS from the node's own dnsmasq with a real
DHCP client (busybox ``udhcpc``, asking for option 114 like a phone that reads
RFC 8910), whose script configures ``wlan0`` as a phone's network stack would.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from node.lab.netns import LabError, ip_batch, run
from node.mesh.access import mounted_noexec

#: The phone's side of its link, and the node's bridge.
PHONE_IF = "wlan0"
BRIDGE = "ap0"

UDHCPC_SCRIPT = """#!/bin/sh
# Called by busybox udhcpc (meshhub lab): configure wlan0 and record the lease.
case "$1" in
  deconfig)
    ip -4 address flush dev "$interface"
    ;;
  bound|renew)
    ip -4 address flush dev "$interface"
    ip address add "$ip/$mask" dev "$interface"
    ip route replace default via "${{router%% *}}" dev "$interface"
    f='{{"ip":"%s","mask":"%s","router":"%s","dns":"%s","serverid":"%s","lease":"%s",'
    f="$f"'"opt114":"%s"}}\\n'
    printf "$f" "$ip" "$mask" "$router" "$dns" "$serverid" "$lease" "$opt114" > "{out}.tmp"
    mv "{out}.tmp" "{out}"
    ;;
esac
"""


def bridge_commands(address: str) -> list[str]:
    """``ip -batch`` lines making the access point's stand-in: a bridge with ``address``."""
    return [f"link add {BRIDGE} type bridge", f"link set {BRIDGE} up",
            f"address add {address} dev {BRIDGE}"]


def add_phone(node_ns: str, phone_ns: str, number: int) -> None:
    """Create ``phone_ns`` and join it to the node's bridge by a veth pair (no address yet)."""
    run("ip", "netns", "add", phone_ns)
    cable(node_ns, phone_ns, number)
    ip_batch(phone_ns, ["link set lo up"])


def cable(node_ns: str, phone_ns: str, number: int, mac: str | None = None) -> None:
    """Join the phone's ``wlan0`` (with ``mac``, else a random one) to the node's bridge by
    a veth pair whose bridge end is ``ap0p<number>``, isolated like a Wi-Fi station."""
    port = f"ap0p{number}"
    peer = f"peer name {PHONE_IF} netns {phone_ns}" + (f" address {mac}" if mac else "")
    ip_batch(node_ns, [f"link add {port} type veth {peer}",
                       f"link set {port} master {BRIDGE}",
                       f"link set dev {port} type bridge_slave isolated on",
                       f"link set {port} up"])
    ip_batch(phone_ns, [f"link set {PHONE_IF} up"])
    # A phone offered no IPv6 by the node (no RA, no DHCPv6) has only a link-local address.
    run("ip", "netns", "exec", phone_ns, "sysctl", "-qw",
        f"net.ipv6.conf.{PHONE_IF}.accept_ra=0")


def dhcp(phone_ns: str, folder: Path, timeout: float = 60) -> dict[str, str]:
    """Ask the node for an address with ``udhcpc`` inside ``phone_ns``; the lease's fields.

    ``ip``, ``mask``, ``router``, ``dns``, ``serverid``, ``lease`` as udhcpc reports them
    and ``opt114`` decoded to text (the Captive Portal API URL, RFC 8910).
    """
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "lease.json"
    out.unlink(missing_ok=True)
    text = UDHCPC_SCRIPT.format(out=out)
    script = folder / "udhcpc.sh"
    script.write_text(text, encoding="utf-8")
    script.chmod(0o755)
    # The lab's folder is under /run by default, which systemd mounts noexec: udhcpc
    # then runs a copy of its script from a private temporary folder.
    scratch = None
    if mounted_noexec(folder):
        scratch = Path(tempfile.mkdtemp(prefix="meshhub-udhcpc-"))
        script = scratch / "udhcpc.sh"
        script.write_text(text, encoding="utf-8")
        script.chmod(0o700)
    try:
        result = run("ip", "netns", "exec", phone_ns, "busybox", "udhcpc", "-i", PHONE_IF,
                     "-n", "-q", "-t", "10", "-T", "1", "-A", "1", "-O", "114", "-s",
                     str(script), check=False, timeout=timeout)
    except subprocess.TimeoutExpired:  # ten 1-s tries, stretched by a starved machine
        raise LabError(f"the phone in {phone_ns} got no DHCP lease from its node within "
                       f"{timeout:g} s; read the node's run/dnsmasq.log") from None
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if result.returncode != 0 or not out.exists():
        raise LabError(f"the phone in {phone_ns} got no DHCP lease from its node "
                       f"(udhcpc: {(result.stderr or result.stdout).strip()[-300:]}); "
                       "read the node's run/dnsmasq.log")
    lease: dict[str, str] = json.loads(out.read_text(encoding="utf-8"))
    if lease.get("opt114"):
        with contextlib.suppress(ValueError):  # older busybox versions print it as text
            lease["opt114"] = bytes.fromhex(lease["opt114"]).decode("utf-8")
    return lease


# --- phones with a radio (the radio lab: node.lab.radio) -------------------------------


def wpa_supplicant_conf(ssid: str, bssids: list[str], freq: int, ctrl_dir: str) -> str:
    """A phone's ``wpa_supplicant.conf``: the open network ``ssid`` on ``freq`` MHz, only
    at the access points ``bssids``: the first, then the others in order of preference.

    Every lab access point has the same SSID and every radio hears every other, so the
    phone is told which ones are "near" it: its node's (the topology's choice), then
    that node's neighbours, which it roams to when its own goes away. Those start
    disabled (:func:`enable_roaming` turns them on once the phone is on its own node's
    access point): a phone switched on would otherwise take whichever answered first.
    """
    if not bssids:
        raise LabError("a phone needs at least one access point to associate with")
    lines = [f"ctrl_interface={ctrl_dir}", "ap_scan=1", "update_config=0", ""]
    for rank, bssid in enumerate(bssids):
        lines += ["network={", f"    ssid={ssid.encode('utf-8').hex()}", "    key_mgmt=NONE",
                  f"    bssid={bssid}", f"    priority={len(bssids) - rank}",
                  f"    scan_freq={freq}", f"    freq_list={freq}",
                  *(["    disabled=1"] if rank else []), "}"]
    return "\n".join(lines) + "\n"


def associated_bssid(phone_ns: str) -> str | None:
    """The access point the phone's radio is associated with now (``iw dev wlan0 link``);
    None also when ``iw`` gets no answer within 20 s (seen in a starved TCG guest): the
    callers ask again until their own deadline."""
    try:
        out = run("ip", "netns", "exec", phone_ns, "iw", "dev", PHONE_IF, "link",
                  check=False).stdout
    except subprocess.TimeoutExpired:
        return None
    words = out.split()
    if len(words) >= 3 and words[:2] == ["Connected", "to"]:
        return words[2].lower()
    return None


def enable_roaming(phone_ns: str, ctrl_dir: str) -> None:
    """Let the phone use the other access points of its configuration when it loses its
    own (``wpa_cli enable_network all``)."""
    result = run("ip", "netns", "exec", phone_ns, "wpa_cli", "-p", ctrl_dir, "-i", PHONE_IF,
                 "enable_network", "all", check=False, timeout=60)
    if result.returncode != 0 or "OK" not in result.stdout:
        raise LabError(f"wpa_cli in {phone_ns} could not enable roaming: "
                       f"{(result.stderr or result.stdout).strip()}")
