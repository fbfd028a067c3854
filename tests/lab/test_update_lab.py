"""Updates over the real mesh: 3 lab nodes (babeld, agents, portals) in a line.

What is real: the agents, the mesh routes, release mirroring between neighbours'
agents, verification, the staged-rollout decision, the updater's switch and
rollback, and the health probe (agent API, portal, babeld neighbours). What is
not: installing. Real pip installs of meshhub and its dependencies would take
minutes per node, so ``update.install_command`` is a script that makes a
venv-like folder whose ``bin/meshhub-portal`` runs this checkout's portal (or,
for a release marked broken, exits at once), and ``update.restart_command``
restarts the node's portal from ``current`` — so a broken release really takes
the portal down until the node rolls back. The agent is not restarted in the lab.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench import netlab
from node.identity import load_or_create_identity
from node.lab import MeshLab, lab_namespaces
from node.update.manifest import MANIFEST_NAME, parse_manifest
from tests.conftest import require_root, require_tool
from tests.node.test_update_service import (
    ADMINS,
    registry_files,
    seed_root,
    signed_release,
)

# One release story on one 3-node lab (built once, minutes): each test is a step that starts
# from the versions the previous one left, so pytest-randomly keeps their file order.
pytestmark = [pytest.mark.root, pytest.mark.scenario]
HEALTH_WINDOW = 30
EVIL_PORT = 9300

INSTALLER = """#!/bin/sh
# The lab's stand-in for 'python3 -m venv' + 'pip install': a venv-like folder.
venv="$1"; wheels="$2"; version="$3"
mkdir -p "$venv/bin"
if grep -q BROKEN-PORTAL "$wheels/meshhub-$version-py3-none-any.whl"; then
  printf '#!/bin/sh\\necho "release %s: portal broken on purpose" >&2\\nexit 1\\n' "$version" \\
    > "$venv/bin/meshhub-portal"
else
  printf '#!/bin/sh\\nexec %s "$@"\\n' "{portal}" > "$venv/bin/meshhub-portal"
fi
chmod 755 "$venv/bin/meshhub-portal"
"""

RESTART = """#!/bin/sh
# Restart this lab node's portal from update.root/current (the agent keeps running).
pidfile="{dir}/portal.pid"
if [ -f "$pidfile" ]; then
  pid=$(cat "$pidfile"); kill "$pid" 2>/dev/null; i=0
  while [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null \\
        && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
fi
setsid "{root}/current/bin/meshhub-portal" serve -c "{config}" --allow-root \\
  >> "{dir}/portal.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
"""


@dataclass
class UpdateLab:
    """A mesh lab whose nodes run the autoupdater (see the module docstring)."""

    mesh: MeshLab
    work: Path
    evil: subprocess.Popen[bytes] | None = None
    outages: dict[str, list[float]] = field(default_factory=dict)

    def dir(self, name: str) -> Path:
        return Path(self.mesh.state.state_dir) / name

    def root(self, name: str) -> Path:
        return self.dir(name) / "opt"

    def cli(self, name: str, *args: str, check: bool = True) -> str:
        from node.lab.lab import _program

        node = self.mesh.node(name)
        result = self.mesh.exec(name, [*_program("meshhub"), "-c", node.config, *args],
                                capture_output=True, timeout=300)
        if check:
            assert result.returncode == 0, result.stderr
        return str(result.stdout)

    def status(self, name: str) -> dict[str, object]:
        node = self.mesh.node(name)
        out = self.mesh.exec(name, ["curl", "-s", "-m", "3",
                                    f"http://{node.mesh_address}:9180/update/v1/status"],
                             capture_output=True, timeout=10).stdout
        try:
            return json.loads(out)  # type: ignore[no-any-return]
        except ValueError:
            return {}

    def portal_ok(self, name: str) -> bool:
        node = self.mesh.node(name)
        code = self.mesh.exec(name, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                     "-m", "2", f"http://{node.mesh_address}:8080/"],
                              capture_output=True, timeout=10).stdout
        return str(code).startswith(("2", "3"))


def prepare(mesh: MeshLab, work: Path, rollout_mirror: bool = True) -> UpdateLab:
    """Registry, update roots, fake installer and restart, ``[update]``; restart each node."""
    from node.lab.lab import _program

    lab = UpdateLab(mesh, work)
    names = list(mesh.state.nodes)
    keys = {n: load_or_create_identity(lab.dir(n) / "data").public_key for n in names}
    anchors, snapshot = registry_files(keys)
    portal = _program("meshhub-portal")[0]
    running = _running_version()
    installer = work / "fake-install.sh"
    installer.write_text(INSTALLER.replace("{portal}", portal))
    for name in names:
        registry = lab.dir(name) / "data" / "registry"
        registry.mkdir(parents=True, exist_ok=True)
        (registry / "anchors.json").write_bytes(anchors)
        (registry / "snapshot.json").write_bytes(snapshot)
        root = lab.root(name)
        subprocess.run(["/bin/sh", str(installer), str(root / "venvs" / running),
                        str(_wheel_dir(work, running)), running], check=True)
        seed_root(root, running)
        restart = lab.dir(name) / "restart-portal.sh"
        restart.write_text(RESTART.format(dir=lab.dir(name), root=root,
                                          config=mesh.node(name).config))
        mirrors = f'["http://10.42.0.1:{EVIL_PORT}"]' if rollout_mirror else "[]"
        with open(mesh.node(name).config, "a", encoding="utf-8") as toml:
            toml.write(f'\n[update]\nenabled = true\nroot = "{root}"\n'
                       f"health_window_seconds = {HEALTH_WINDOW}\njitter_minutes = 0\n"
                       f'install_command = ["/bin/sh", "{installer}", "{{venv}}", '
                       f'"{{wheels}}", "{{version}}"]\n'
                       f'restart_command = ["/bin/sh", "{restart}"]\n'
                       f"mirrors = {mirrors}\n")
        mesh.kill(name, gently=True)
        mesh.revive(name)
    mesh.wait_ready(90)
    for name in names:
        (lab.dir(name) / "portal.pid").write_text(str(mesh.node(name).pids["portal"]))
    return lab


def _running_version() -> str:
    from importlib import metadata

    return metadata.version("meshhub")


def _wheel_dir(work: Path, version: str) -> Path:
    """A wheelhouse holding a plain (not broken) wheel of ``version`` for the seed venv."""
    folder = work / f"seed-{version}"
    folder.mkdir(exist_ok=True)
    (folder / f"meshhub-{version}-py3-none-any.whl").write_bytes(b"PK seed")
    return folder


def release(lab: UpdateLab, version: str, *, broken: bool = False, **kwargs: object) -> Path:
    """A signed release folder of ``version`` in the work folder."""
    folder = lab.work / "releases" / version
    folder.parent.mkdir(exist_ok=True)
    payload = b" BROKEN-PORTAL" if broken else b" " + secrets.token_bytes(200_000)
    signed_release(folder, version, payload=payload, **kwargs)  # type: ignore[arg-type]
    return folder


def wait_for(what: str, predicate: object, timeout: float = 60, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


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
                assert status["running"] == _running_version(), (what, name)
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
            for n in lab.mesh.state.nodes), timeout=90)
        wait_for("every portal answering", lambda: all(
            lab.portal_ok(n) for n in lab.mesh.state.nodes), timeout=30)
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
            for n in lab.mesh.state.nodes), timeout=HEALTH_WINDOW * 3 + 60)
        wait_for("every portal answering again", lambda: all(
            lab.portal_ok(n) for n in lab.mesh.state.nodes), timeout=30)
    for name in lab.mesh.state.nodes:
        status = lab.status(name)
        assert status["state"]["step"] == "rolled-back", status  # type: ignore[index]
        assert "portal does not answer" in status["state"]["message"]  # type: ignore[index]
        assert os.readlink(lab.root(name) / "current") == before[name]
        assert status["running"] == "0.2.0"
        # Down only while the broken version ran: the health window, a probe, a restart.
        assert outages[name] < HEALTH_WINDOW + 20, f"{name} down {outages[name]:.0f} s"
