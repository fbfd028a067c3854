"""A mesh lab whose nodes run the autoupdater, and signed releases for it.

Shared by bench/update.py and the tests (tests/lab/test_update_lab.py,
tests/node/test_update_service.py), so that the benchmark measures exactly what the
tests check and bench/ imports nothing from tests/.

What is real: the agents, the mesh routes, release mirroring between neighbours'
agents, verification, the staged-rollout decision, the updater's switch and
rollback, and the health probe (agent API, portal, babeld neighbours). What is
not: installing. Real pip installs of meshhub and its dependencies would take
minutes per node, so ``update.install_command`` is a script that makes a
venv-like folder whose ``bin/meshhub-portal`` runs this checkout's portal (or,
for a release marked broken, exits at once), and ``update.restart_command``
restarts the node's portal from ``current``, so a broken release really takes
the portal down until the node rolls back. The agent is not restarted in the lab.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from node.identity import Identity, load_or_create_identity, save_identity
from node.lab import MeshLab
from node.trust.registry import (
    Admin,
    AdminSet,
    Signature,
    SignedSnapshot,
    dump_anchors,
    signing_message,
)
from node.update.manifest import MANIFEST_NAME, Manifest, parse_manifest
from provisioning.release import make_release, sign_release

#: The community's admins (three; two signatures make a release or a registry valid).
ADMINS = [Identity.generate() for _ in range(3)]
#: The trust anchors naming them.
ANCHORS = AdminSet(tuple(Admin(f"admin{i}", a.public_key) for i, a in enumerate(ADMINS)), 2)


def signed_release(folder: Path, version: str, *, signers: list[Identity] | None = None,
                   rollout_days: int = 0, date: str = "2020-01-01", payload: bytes = b"",
                   keys_dir: Path | None = None) -> Manifest:
    """Make and sign a release of ``version`` in ``folder`` with provisioning.release."""
    wheels = folder.parent / f".wheels-{folder.name}"
    wheels.mkdir(parents=True)
    (wheels / f"meshhub-{version}-py3-none-any.whl").write_bytes(
        b"PK fake meshhub wheel " + version.encode() + payload)
    (wheels / "tomli_w-1.0.0-py3-none-any.whl").write_bytes(b"PK a dependency " + payload)
    make_release(folder, wheelhouse=wheels, rollout_days=rollout_days, date=date)
    keys = keys_dir or folder.parent / ".keys"
    keys.mkdir(exist_ok=True)
    manifest = None
    for admin in ADMINS[:2] if signers is None else signers:
        key = keys / f"{admin.public_key[:12]}.key"
        if not key.exists():
            save_identity(admin, key)
        manifest, _, _ = sign_release(folder, key)
    return manifest or parse_manifest((folder / MANIFEST_NAME).read_bytes())


def registry_files(keys: dict[str, str]) -> tuple[bytes, bytes]:
    """(anchors.json, snapshot.json) for a community of these ``name -> node key``."""
    snapshot = {"serial": 1,
                "community": {"admins": ANCHORS.to_json()["admins"], "threshold": 2},
                "nodes": [{"name": n, "public_key": k, "status": "active"}
                          for n, k in sorted(keys.items())]}
    message = signing_message(snapshot)
    signed = SignedSnapshot(snapshot, tuple(Signature(a.public_key, a.sign(message))
                                            for a in ADMINS[:2]))
    return dump_anchors(ANCHORS), signed.dumps()


def seed_root(root: Path, version: str, portal: Path | None = None) -> None:
    """An update root as first boot leaves it: venvs/<version> (whole) and current."""
    venv = root / "venvs" / version
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / ".meshhub-complete").write_text(version + "\n")
    if portal is not None:
        (venv / "bin" / "meshhub-portal").symlink_to(portal)
    if not (root / "current").is_symlink():
        os.symlink(f"venvs/{version}", root / "current")


#: Seconds a new release must stay healthy before a node calls it done
#: (update.health_window_seconds).
HEALTH_WINDOW = 30
#: Port of a mirror on the host side serving tampered releases (the lab test's attacker).
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
        """Node ``name``'s folder in the lab's state."""
        return Path(self.mesh.state.state_dir) / name

    def root(self, name: str) -> Path:
        """Node ``name``'s update root (``update.root``)."""
        return self.dir(name) / "opt"

    def cli(self, name: str, *args: str, check: bool = True) -> str:
        """``meshhub ARGS`` run in node ``name``; its output (``check``: fail unless it exits 0)."""
        from node.lab.lab import _program

        node = self.mesh.node(name)
        result = self.mesh.exec(name, [*_program("meshhub"), "-c", node.config, *args],
                                capture_output=True, timeout=300)
        if check and result.returncode != 0:
            raise RuntimeError(f"{name}: meshhub {' '.join(args)} failed: {result.stderr}")
        return str(result.stdout)

    def status(self, name: str) -> dict[str, object]:
        """Node ``name``'s ``/update/v1/status`` ({} when it does not answer)."""
        node = self.mesh.node(name)
        out = self.mesh.exec(name, ["curl", "-s", "-m", "3",
                                    f"http://{node.mesh_address}:9180/update/v1/status"],
                             capture_output=True, timeout=10).stdout
        try:
            return json.loads(out)  # type: ignore[no-any-return]
        except ValueError:
            return {}

    def portal_ok(self, name: str) -> bool:
        """Whether node ``name``'s portal answers its home page."""
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
    running = running_version()
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


def running_version() -> str:
    """The version of meshhub installed here (what the seeded nodes run)."""
    from importlib import metadata

    return metadata.version("meshhub")


def _wheel_dir(work: Path, version: str) -> Path:
    """A wheelhouse holding a plain (not broken) wheel of ``version`` for the seed venv."""
    folder = work / f"seed-{version}"
    folder.mkdir(exist_ok=True)
    (folder / f"meshhub-{version}-py3-none-any.whl").write_bytes(b"PK seed")
    return folder
