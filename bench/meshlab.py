"""Helpers for a mesh lab (node.lab.MeshLab) shared by bench/mesh.py and the lab tests.

Each runs a command inside a node's namespace: its meshhub command, a portal page, its
agent's name as seen over the mesh.
"""

from __future__ import annotations

import json
from pathlib import Path

from node.lab import MeshLab

__all__ = ["agent_name", "defaults_grid", "meshhub", "organiser", "portal_page"]


def defaults_grid(count: int, state_dir: Path) -> MeshLab:
    """The scale benchmarks' lab: a grid of ``count`` agents without portals, at a real
    node's timings (``--timings defaults``: sync rounds every 60 s +- 20 %, health every
    30 s, babeld hello 4 s); up to 10 minutes to come up."""
    return MeshLab.up(count, "grid", state_dir=state_dir, hello_interval=4.0, portal=False,
                      wait=600, timings="defaults")


def meshhub(mesh: MeshLab, node: str, *args: str, stdin: str | None = None) -> str:
    """Run the meshhub command of ``node`` (its node.toml) inside its namespace."""
    from node.lab.lab import _program

    result = mesh.exec(node, [*_program("meshhub"), "-c", mesh.node(node).config, *args],
                       capture_output=True, input=stdin, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"meshhub {' '.join(args)} on {node}: {result.stderr}")
    return result.stdout.strip()


def organiser(mesh: MeshLab, node: str) -> str:
    """An admin account 'lab' on ``node`` (accounts are per node)."""
    listed = meshhub(mesh, node, "organiser", "list")
    if "lab" not in listed.split():
        meshhub(mesh, node, "organiser", "add", "lab", "--role", "admin", "--password-stdin",
                stdin="correct horse battery staple\ncorrect horse battery staple\n")
    return "lab"


def portal_page(mesh: MeshLab, node: str, path: str = "/notices/") -> str:
    """A portal page of ``node``, fetched inside its namespace over its mesh address."""
    n = mesh.node(node)
    result = mesh.exec(node, ["curl", "-s", "-m", "3", f"http://{n.mesh_address}:8080{path}"],
                       capture_output=True, timeout=10)
    return result.stdout


def agent_name(mesh: MeshLab, here: str, there: str) -> str | None:
    """The name ``there``'s agent gives, asked from ``here`` over the mesh."""
    url = f"http://{mesh.node(there).mesh_address}:9180/api/health"
    out = mesh.exec(here, ["curl", "-s", "-m", "3", url], capture_output=True, timeout=10).stdout
    try:
        return json.loads(out)["node"]["name"]
    except (ValueError, KeyError):
        return None
