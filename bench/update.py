"""Benchmark (mesh lab, root): from a release being signed to all 10 nodes running it.

A 10-node line (the worst case for spreading: nine hops), rollout period 0.
The clock starts before the last admin signature, then the release is
imported on n1 (``meshhub update import``) and travels neighbour to neighbour;
it stops when every node's ``/update/v1/status`` says it runs the new version
and its health check passed. Installing is the lab's stand-in (a venv-like
folder, see bench/update_lab.py), not pip: the figure is the
mesh's part of an update (verify, mirror, fetch, switch, restart the portal,
health check), not pip's. Also reports the bytes each node downloaded: the
target is every file crossing each link at most once, i.e. each node but n1
downloads exactly the release's size once.

Run: ``sudo .venv/bin/python -m bench.update``
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

NODES = 10


def main() -> None:
    """Build the lab, time one release across it, print the figures, remove the lab."""
    if os.geteuid() != 0:
        print("update_rollout_10_nodes: not run (needs root for the mesh lab) "
              "(target: every file crosses each link at most once)")
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.update_lab import ADMINS, prepare, signed_release
    from bench.waiting import wait_for
    from node.lab import MeshLab
    from node.update.manifest import MANIFEST_NAME, parse_manifest

    with tempfile.TemporaryDirectory(prefix="meshhub-bench-update-") as tmp:
        work = Path(tmp)
        mesh = MeshLab.up(NODES, "line", state_dir=work / "lab", lab_id=secrets.token_hex(3),
                          hello_interval=1.0, wait=180)
        try:
            lab = prepare(mesh, work, rollout_mirror=False)
            folder = work / "releases" / "0.2.0"
            folder.parent.mkdir()
            signed_release(folder, "0.2.0", signers=ADMINS[:1],
                           payload=b" " + secrets.token_bytes(2_000_000))
            started = time.monotonic()
            signed_release_last_signature(folder)
            lab.cli("n1", "update", "import", str(folder))
            names = list(mesh.state.nodes)
            wait_for("all nodes on 0.2.0, health checked", lambda: all(
                _done(lab.status(n), "0.2.0") for n in names), timeout=300, interval=0.2)
            took = time.monotonic() - started
            size = sum(f.size for f in parse_manifest((folder / MANIFEST_NAME).read_bytes())
                       .files)
            got = {n: lab.status(n)["downloaded"] for n in names}
        finally:
            mesh.down()
    print(f"update_rollout_10_nodes: {took:.1f} s (target: all 10 nodes, 9 hops, within a "
          "few seconds per hop)")
    print(f"update_release_size: {size} bytes (target: -)")
    for name in names:
        files = got[name]["file_bytes"]  # type: ignore[index]
        received = got[name]["received_bytes"]  # type: ignore[index]
        print(f"update_downloaded_{name}: {files} bytes of files, {received} bytes received "
              f"from mirrors in all (target: files {0 if name == 'n1' else size} = each file "
              "once)")
    links = sum(1 for n in names if got[n]["file_bytes"] > 0)  # type: ignore[index]
    worst = max(got[n]["file_bytes"] for n in names) / size  # type: ignore[index]
    print(f"update_file_copies_per_link: {worst:.2f} (target: at most 1.00; {links} of "
          f"{NODES - 1} links carried the release)")


def _done(status: dict[str, object], version: str) -> bool:
    state = status.get("state")
    return status.get("running") == version and isinstance(state, dict) \
        and state.get("step") == "done"


def signed_release_last_signature(folder: Path) -> None:
    """The second admin signs: from now on the release is valid (the clock already runs)."""
    from bench.update_lab import ADMINS
    from node.identity import save_identity
    from provisioning.release import sign_release

    key = folder.parent / "second-admin.key"
    save_identity(ADMINS[1], key)
    sign_release(folder, key)


if __name__ == "__main__":
    main()
