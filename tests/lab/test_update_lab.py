"""Updates over the real mesh: 3 lab nodes (babeld, agents, portals) in a line.

The lab is :mod:`bench.update_lab`'s (shared with bench/update.py): real agents, routes,
mirroring, verification, rollout, switch, rollback and health probe; a stand-in
installer, so no pip runs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import netlab
from bench.update_lab import (
    ADMINS,
    EVIL_PORT,
    HEALTH_WINDOW,
    UpdateLab,
    prepare,
    running_version,
    signed_release,
)
from bench.waiting import wait_for
from node.lab import MeshLab, lab_namespaces
from node.update.manifest import MANIFEST_NAME, parse_manifest
from tests.conftest import require_root, require_tool

# One release story on one 3-node lab (built once, minutes): each test is a step that starts
# from the versions the previous one left, so pytest-randomly keeps their file order.
pytestmark = [pytest.mark.root, pytest.mark.scenario]


def release(lab: UpdateLab, version: str, *, broken: bool = False, **kwargs: object) -> Path:
    """A signed release folder of ``version`` in the work folder."""
    folder = lab.work / "releases" / version
    folder.parent.mkdir(exist_ok=True)
    payload = b" BROKEN-PORTAL" if broken else b" " + secrets.token_bytes(200_000)
    signed_release(folder, version, payload=payload, **kwargs)  # type: ignore[arg-type]
    return folder


@contextlib.contextmanager
def watching_portals(lab: UpdateLab) -> Iterator[dict[str, float]]:
    """Poll every portal each second; yields each node's longest outage in seconds."""
    longest: dict[str, float] = dict.fromkeys(lab.mesh.state.nodes, 0.0)
    down_since: dict[str, float | None] = dict.fromkeys(lab.mesh.state.nodes)
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            for name in longest:
                now = time.monotonic()
                if lab.portal_ok(name):
                    down_since[name] = None
                else:
                    start = down_since[name] = down_since[name] or now
                    longest[name] = max(longest[name], now - start)
            stop.wait(1.0)

    thread = threading.Thread(target=poll, name="portal-watch")
    thread.start()
    try:
        yield longest
    finally:
        stop.set()
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpdateLab]:
    require_root()
    require_tool("ip", "babeld", "curl")
    work = tmp_path_factory.mktemp("update-lab")
    lab_id = netlab.lab_tag()
    mesh = MeshLab.up(3, "line", state_dir=work / "lab", lab_id=lab_id, hello_interval=1.0,
                      wait=90)
    try:
        yield prepare(mesh, work)
    finally:
        mesh.down()
        assert not [ns for ns in lab_namespaces() if ns.startswith(f"mhl-{lab_id}-")]
        assert not (work / "lab").exists()


def _evil_mirror(lab: UpdateLab, folder: Path, tamper_file: bool = False) -> Path:
    """Lay ``folder`` out as a mirror would serve it (manifest, files by hash)."""
    www = lab.work / "evil-www"
    shutil.rmtree(www, ignore_errors=True)
    (www / "update" / "v1" / "files").mkdir(parents=True)
    data = (folder / MANIFEST_NAME).read_bytes()
    (www / "update" / "v1" / "manifest").write_bytes(data)
    for item in parse_manifest(data).files:
        body = (folder / item.path).read_bytes()
        if tamper_file:
            body = bytes(b ^ 0x55 for b in body)  # same size, different bytes
        (www / "update" / "v1" / "files" / item.sha256).write_bytes(body)
    return www


def test_bad_releases_are_refused_by_every_node(lab: UpdateLab) -> None:
    """A hostile mirror on n1 offers, in turn: a tampered file, too few signatures, a key that
    is not (or no longer) an admin's, an older version. Every node refuses each one."""
    from node.identity import Identity

    www = lab.work / "evil-www"
    www.mkdir()
    lab.evil = subprocess.Popen(
        ["ip", "netns", "exec", lab.mesh.node("n1").ns, sys.executable, "-m", "http.server",
         str(EVIL_PORT), "--bind", "10.42.0.1", "--directory", str(www)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mirror = f"http://10.42.0.1:{EVIL_PORT}"
    cases = [("tampered", release(lab, "2.0.0"), True, "tampered"),
             ("too few", release(lab, "2.0.1", signers=ADMINS[:1]), False,
              "only 1 valid signature"),
             ("revoked", release(lab, "2.0.2", signers=[ADMINS[0], Identity.generate()]),
              False, "not (or no longer) admins"),
             ("older", release(lab, "0.0.1"), False, None)]
    try:
        for what, folder, tamper, reason in cases:
            _evil_mirror(lab, folder, tamper_file=tamper)
            for name in lab.mesh.state.nodes:
                lab.cli(name, "update", "check", "--timeout", "120")
                status = lab.status(name)
                assert status["running"] == running_version(), (what, name)
                assert not (lab.root(name) / "releases" / folder.name).exists(), (what, name)
                refusals = status["refusals"]
                if reason is None:
                    assert str(status["last_result"]).startswith("up to date"), (what, status)
                else:
                    assert reason in str(refusals.get(mirror, "")), (what, name, refusals)
            log = (lab.dir("n3") / "agent.log").read_text(errors="replace")
            if reason is not None:
                assert reason in log, f"{what}: n3's log says why"
    finally:
        lab.evil.terminate()
        lab.evil.wait(timeout=10)


def test_a_signed_release_reaches_every_node_over_the_mesh(lab: UpdateLab) -> None:
    folder = release(lab, "0.2.0")
    size = sum(f.size for f in parse_manifest((folder / MANIFEST_NAME).read_bytes()).files)
    before = {n: lab.status(n)["downloaded"]["file_bytes"]  # type: ignore[index]
              for n in lab.mesh.state.nodes}
    with watching_portals(lab) as outages:
        lab.cli("n1", "update", "import", str(folder))
        wait_for("every node running 0.2.0, health check passed", lambda: all(
            lab.status(n).get("running") == "0.2.0"
            and lab.status(n)["state"]["step"] == "done"  # type: ignore[index]
            for n in lab.mesh.state.nodes), timeout=90, interval=0.5)
        wait_for("every portal answering", lambda: all(
            lab.portal_ok(n) for n in lab.mesh.state.nodes), timeout=30, interval=0.5)
    for name in lab.mesh.state.nodes:
        status = lab.status(name)
        assert status["state"]["step"] == "done", (name, status)  # type: ignore[index]
        assert os.readlink(lab.root(name) / "current") == "venvs/0.2.0"
        assert outages[name] < 15, f"{name}'s portal was down {outages[name]:.0f} s"
    # n1 had it; n2 fetched from n1 and n3 from n2: each file crossed each link once.
    got = {n: lab.status(n)["downloaded"]["file_bytes"] - before[n]  # type: ignore[index]
           for n in lab.mesh.state.nodes}
    assert got == {"n1": 0, "n2": size, "n3": size}, got


def test_a_release_failing_its_health_check_is_rolled_back_everywhere(lab: UpdateLab) -> None:
    before = {n: os.readlink(lab.root(n) / "current") for n in lab.mesh.state.nodes}
    folder = release(lab, "0.3.0", broken=True)
    with watching_portals(lab) as outages:
        lab.cli("n1", "update", "import", str(folder))
        wait_for("every node to roll 0.3.0 back", lambda: all(
            "0.3.0" in lab.status(n).get("state", {}).get("refused", [])  # type: ignore[union-attr]
            for n in lab.mesh.state.nodes), timeout=HEALTH_WINDOW * 3 + 60, interval=0.5)
        wait_for("every portal answering again", lambda: all(
            lab.portal_ok(n) for n in lab.mesh.state.nodes), timeout=30, interval=0.5)
    for name in lab.mesh.state.nodes:
        status = lab.status(name)
        assert status["state"]["step"] == "rolled-back", status  # type: ignore[index]
        assert "portal does not answer" in status["state"]["message"]  # type: ignore[index]
        assert os.readlink(lab.root(name) / "current") == before[name]
        assert status["running"] == "0.2.0"
        # Down only while the broken version ran: the health window, a probe, a restart.
        assert outages[name] < HEALTH_WINDOW + 20, f"{name} down {outages[name]:.0f} s"
