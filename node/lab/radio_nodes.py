"""The radio lab's nodes and phones: radios into namespaces, ``meshhub net apply``, the air.

Each node gets one simulated radio (:mod:`node.lab.radio`), or two with ``--radios 2``.
Its interface becomes the access point ``ap0``; then the node's own code path sets the
rest up, as on a real node: ``meshhub net apply --no-daemons`` renders the plan, loads
the gate, creates the 802.11s mesh point ``mesh0`` on the mesh radio (the same radio
and channel as the access point with one radio) and puts the portal address on ``ap0``;
the agent then runs hostapd, wpa_supplicant joining the lab's mesh with SAE, dnsmasq
and babeld (``mesh0`` as a wireless interface) with their rendered files.
:mod:`node.lab.peering` opens peer links between topology neighbours only, and
:mod:`node.lab.air` makes links lossy or slow. A phone is a namespace with its own radio
running ``wpa_supplicant`` (and later a DHCP client), associated with its node's access
point.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from node.lab import air
from node.lab import phones as phone_net
from node.lab.netns import LabError, ip_batch, run, sysctls
from node.lab.radio import hostapd_failure, mac_address, make_radios, move_radio
from node.net.regulatory import frequency_mhz

if TYPE_CHECKING:
    from node.lab.lab import LabNode, LabPhone, MeshLab

AP_IF = "ap0"
MESH_IF = "mesh0"


def radios_needed(nodes: int, per_node: int, phones: bool) -> int:
    """How many simulated radios a lab of ``nodes`` takes (phones have one each)."""
    return nodes * per_node + (nodes if phones else 0)


def net_dir(lab: MeshLab, node: LabNode) -> Path:
    """Where ``meshhub net apply`` keeps the node's rendered files (its ``run`` folder:
    a node that loses power renders them again)."""
    return Path(lab.state.state_dir) / node.name / "run" / "net"


def air_namespace(lab: MeshLab) -> str:
    """The namespace the lab's radios are made in (their shared air; :mod:`node.lab.hwsim`)."""
    return f"{lab.state.ns_prefix}air"


def give_radios(lab: MeshLab, node: LabNode) -> None:
    """Make the node's radios and move them into its namespace: the AP radio's interface
    becomes ``ap0``; the mesh point is made on the mesh radio (the same with one radio)."""
    base = node.ns
    names = [base] if lab.state.radios_per_node == 1 else [f"{base}m", f"{base}a"]
    make_radios(air_namespace(lab), names)
    node.radios = names
    node.mesh_phy = names[0]
    lab.state.save()
    if len(names) == 2:  # a mesh-only radio keeps its own interface, down
        move_radio(air_namespace(lab), names[0], node.ns, "radio0")
    node.ap_mac = move_radio(air_namespace(lab), names[-1], node.ns, AP_IF)
    lab.state.save()


def apply_network(lab: MeshLab, node: LabNode) -> None:
    """``meshhub net apply --no-daemons`` inside the node, with its ``node.toml``: the gate,
    the mesh point joined on the channel, the access point's address."""
    from node.lab.lab import _program

    folder = net_dir(lab, node)
    shutil.rmtree(folder, ignore_errors=True)
    argv = ["ip", "netns", "exec", node.ns, *_program("meshhub"), "-c", node.config, "net",
            "apply", "--net-dir", str(folder), "--no-daemons"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise LabError(f"{node.name}: 'meshhub net apply' failed: "
                       f"{(result.stderr or result.stdout).strip()[-600:]}")
    node.mesh_mac = mac_address(node.ns, MESH_IF)
    lab.state.save()


def node_air(lab: MeshLab, name: str) -> str:
    """The node's air table: its lossy links (whom it hears at all is decided by its
    peer links: :mod:`node.lab.peering`)."""
    st = lab.state
    loss: dict[str, int] = {}
    device_loss: dict[str, int] = {}
    for a, b, percent, _delay in st.degraded:
        if name in (a, b):
            other = st.nodes[str(b if a == name else a)]
            if st.radio:
                loss[other.mesh_mac] = int(percent)  # type: ignore[call-overload]
            else:
                device_loss[f"m-{other.name}"] = int(percent)  # type: ignore[call-overload]
    if st.radio:
        return air.render_air(radio_device=MESH_IF, radio_loss=loss)
    return air.render_air(device_loss=device_loss)


def shape(lab: MeshLab, name: str, delays: bool = False) -> None:
    """Load node ``name``'s air table (after a degrade, or at power-on) and, with
    ``delays`` (a degrade, or its mesh point made again), the delays of its links."""
    air.apply_air(lab.node(name).ns, node_air(lab, name))
    if delays:
        air.apply_delays(lab.node(name).ns, MESH_IF, node_delays(lab, name))


def node_delays(lab: MeshLab, name: str) -> dict[str, float]:
    """MAC of each neighbour of ``name`` that ``lab degrade --delay`` slows -> milliseconds."""
    found: dict[str, float] = {}
    for a, b, _percent, delay in lab.state.degraded:
        if name in (a, b) and delay:
            found[lab.state.nodes[str(b if a == name else a)].mesh_mac] = float(delay)  # type: ignore[arg-type]
    return found


def wait_access_points(lab: MeshLab, timeout: float) -> None:
    """Wait until every running node's hostapd says ``AP-ENABLED``; if one gives up on its
    configuration or its radio, fail with hostapd's own line."""
    deadline = time.monotonic() + timeout
    pending = {n.name for n in lab.state.nodes.values() if n.pids}
    while pending:
        for name in sorted(pending):
            log = Path(lab.state.state_dir) / name / "run" / "hostapd.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            if "AP-ENABLED" in text:
                pending.discard(name)
                continue
            agent = Path(lab.state.state_dir) / name / "agent.log"
            refused = [line for line in (agent.read_text(errors="replace").splitlines()
                                         if agent.exists() else []) if "not started" in line]
            if refused:
                raise LabError(f"{name}: {refused[0].strip()}")
            line = hostapd_failure(text)
            if line:
                raise LabError(f"{name}: hostapd refused {Path(lab.node(name).config).parent}"
                               f"/run/hostapd.conf: {line}")
        if pending and time.monotonic() > deadline:
            raise LabError(f"the access points of {', '.join(sorted(pending))} did not start "
                           f"within {timeout:g} s; read {lab.state.state_dir}/NODE/run/"
                           "hostapd.log")
        if pending:
            time.sleep(0.2)


def stop_radio(node: LabNode) -> None:
    """A node without power is silent: its mesh point leaves the air (deleted, as a
    power loss would) and its access point goes down."""
    run("ip", "netns", "exec", node.ns, "iw", "dev", MESH_IF, "del", check=False)
    run("ip", "-n", node.ns, "link", "set", AP_IF, "down", check=False)


# --- phones --------------------------------------------------------------------


def phone_access_points(lab: MeshLab, node: LabNode) -> list[str]:
    """The access points a phone next to ``node`` may use: its node's, then the
    neighbours' (highest-numbered first), where it roams when its own goes away."""
    others = sorted(lab.neighbours(node.name), key=lambda n: -int(n[1:]))
    return [node.ap_mac] + [lab.node(n).ap_mac for n in others if lab.node(n).ap_mac]


def add_radio_phone(lab: MeshLab, phone: LabPhone) -> None:
    """Create the phone's namespace with a radio of its own as ``wlan0`` and write its
    ``wpa_supplicant.conf`` (:func:`start_supplicant` turns it on)."""
    node = lab.node(phone.node)
    run("ip", "netns", "add", phone.ns)
    lab.state.save()
    make_radios(air_namespace(lab), [phone.ns])
    phone.phy = phone.ns
    phone.mac = move_radio(air_namespace(lab), phone.ns, phone.ns, phone_net.PHONE_IF)
    ip_batch(phone.ns, ["link set lo up", f"link set {phone_net.PHONE_IF} up"])
    sysctls(phone.ns, [f"net.ipv6.conf.{phone_net.PHONE_IF}.accept_ra=0"])
    folder = Path(lab.state.state_dir) / phone.name
    folder.mkdir(parents=True, exist_ok=True)
    ssid = f"meshhub lab {lab.state.id}"
    conf = folder / "wpa_supplicant.conf"
    conf.write_text(phone_net.wpa_supplicant_conf(
        ssid, phone_access_points(lab, node), frequency_mhz(lab.state.channel),
        str(folder / "ctrl")), encoding="utf-8")
    lab.state.save()


def start_supplicant(lab: MeshLab, phone: LabPhone) -> None:
    """Start the phone's ``wpa_supplicant`` (once the access points are on: a phone
    switched on before its node would take whichever access point came up first)."""
    folder = Path(lab.state.state_dir) / phone.name
    conf = folder / "wpa_supplicant.conf"
    with (folder / "wpa_supplicant.log").open("ab") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", phone.ns, "wpa_supplicant", "-D",
                                 "nl80211", "-i", phone_net.PHONE_IF, "-c", str(conf)],
                                stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    phone.pid = proc.pid
    lab.state.save()


def connect_phone(lab: MeshLab, phone: LabPhone) -> None:
    """Switch the phone on (if it is not), wait until it is on its own node's access
    point, then let it roam to the neighbours' (:func:`phones.enable_roaming`)."""
    if not phone.pid:
        start_supplicant(lab, phone)
    wait_associated(lab, phone)
    phone_net.enable_roaming(phone.ns, str(Path(lab.state.state_dir) / phone.name / "ctrl"))


def wait_associated(lab: MeshLab, phone: LabPhone, timeout: float = 90,
                    bssids: list[str] | None = None) -> str:
    """Wait until the phone's radio is associated with one of ``bssids`` (default: its
    node's access point); that BSSID."""
    wanted = bssids or [lab.node(phone.node).ap_mac]
    deadline = time.monotonic() + timeout
    while True:
        bssid = phone_net.associated_bssid(phone.ns)
        if bssid in wanted:
            return bssid
        if time.monotonic() > deadline:
            log = Path(lab.state.state_dir) / phone.name / "wpa_supplicant.log"
            last = log.read_text(errors="replace").strip().splitlines()[-3:] \
                if log.exists() else []
            raise LabError(f"phone {phone.name} did not associate with {' or '.join(wanted)} "
                           f"within {timeout:g} s (now: {bssid or 'none'}); wpa_supplicant "
                           f"said last: {' | '.join(last) or 'nothing'}")
        time.sleep(0.2)

