"""Radio lab figures (``sudo .venv/bin/python -m bench.mesh --radio``; needs mac80211_hwsim).

* ``lab up --radio --phones`` time for 5 and for 10 nodes in a line;
* a post on n1 until n6's portal shows it, across five radio hops of the 10-node line
  (p50, p95);
* idle traffic over the air: bytes each node's mesh point sends per second while
  nothing changes (babeld's hellos and updates, the sync service's rounds), and the same
  per link of the line;
* a new phone: from switching it on to its association, then from its association to
  its lease and to its first captive probe answered (the redirect to the welcome page).

Where it runs matters: inside a virtual machine under TCG every figure is many times a
real machine's; compare figures of one run only. ``MESHHUB_RADIO_VM_BENCH=1 pytest
tests/lab/test_radio_in_vm.py`` runs it in the radio tests' virtual machine after them
(``=only``: instead of them). The figures come in this order, so that a run stopped at
its time limit keeps the first ones: the 5-node lab's start, idle air, new phone; the
10-node lab's start, posts.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.mesh import propagation, report
from node.lab import MeshLab
from node.lab.radio_nodes import add_radio_phone, start_supplicant, wait_associated

#: Issue 14 asks for these figures without targets.
NO_TARGET = "none set; a TCG guest's figure"


def air_bytes(mesh: MeshLab) -> int:
    """Bytes sent by every node's mesh point so far."""
    total = 0
    for name in mesh.state.nodes:
        out = mesh.exec(name, ["cat", "/sys/class/net/mesh0/statistics/tx_bytes"],
                        capture_output=True, timeout=30).stdout
        total += int(out or 0)
    return total


def new_phone(mesh: MeshLab, node: str) -> None:
    """Switch a new phone on next to ``node``; time to association, lease, first probe."""
    from node.lab.lab import LabPhone

    number = mesh.node(node).number
    phone = LabPhone(f"p{number}-b", node, f"{mesh.state.ns_prefix}p{number}-b")
    mesh.state.phones[phone.name] = phone
    add_radio_phone(mesh, phone)
    t = time.monotonic()
    start_supplicant(mesh, phone)
    wait_associated(mesh, phone)
    report("phone_on_to_associated", time.monotonic() - t, "s", NO_TARGET)
    t = time.monotonic()
    mesh.phone_dhcp(phone.name)
    report("phone_associated_to_leased", time.monotonic() - t, "s", NO_TARGET)
    portal = mesh.node(node).portal_address
    while True:
        result = mesh.exec(phone.name, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                        "-m", "5", "-H", "Host: connectivitycheck.gstatic.com",
                                        f"http://{portal}/generate_204"],
                           capture_output=True, timeout=60)
        if result.stdout.strip() == "302" or time.monotonic() - t > 300:
            break
    report("phone_associated_to_first_probe_answered", time.monotonic() - t, "s", NO_TARGET)


def main() -> None:
    """Both labs, one after the other."""
    root = Path(tempfile.mkdtemp(prefix="meshhub-bench-radio-"))
    root.chmod(0o755)  # the lab's portals run as nobody
    try:
        for nodes in (5, 10):
            started = time.monotonic()
            mesh = MeshLab.up(nodes, "line", state_dir=root / f"line{nodes}", phones=True,
                              wait=1200, radio=True)
            try:
                report(f"radio_lab_up_{nodes}_nodes_with_phones", time.monotonic() - started,
                       "s", NO_TARGET)
                if nodes == 5:
                    before, t0 = air_bytes(mesh), time.monotonic()
                    time.sleep(30)  # the measuring window, not a wait for something
                    rate = (air_bytes(mesh) - before) / (time.monotonic() - t0)
                    hello = f"hello {mesh.state.hello_interval:g} s"
                    report("idle_air_bytes_per_node", rate / nodes, "B/s", f"none set; {hello}")
                    report("idle_air_bytes_per_link", rate / len(mesh.state.links), "B/s",
                           f"none set; {hello}; a line's {len(mesh.state.links)} links")
                    new_phone(mesh, "n3")
                else:
                    propagation(mesh, far="n6", posts=8)
            finally:
                mesh.down()
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
