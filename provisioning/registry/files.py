"""The registry folder on disk: reading and writing its TOML files.

Layout (kept in the community's own git repository)::

    community.toml          name, SSID, country, channels, ranges, admins, threshold
    nodes/<name>.toml       one file per node
    signatures/snapshot.json    the state being signed (written by ``sign``)
    signatures/<admin>.sig      one file per admin signature

Files are written with a fixed key order (diff-friendly) and atomically.
Node private keys never live here (see :mod:`provisioning.registry.ops`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from node.atomic import atomic_write

COMMUNITY_FILE = "community.toml"
NODES_DIR = "nodes"
SIGNATURES_DIR = "signatures"
PENDING_FILE = "snapshot.json"

#: Key order of community.toml and of node files: what a reviewer reads first comes first.
COMMUNITY_KEYS = ("name", "ssid", "country", "mesh_range", "client_range", "client_prefix",
                  "threshold", "channels", "admins")
NODE_KEYS = ("name", "id", "status", "public_key", "mesh_address", "client_subnet", "owner",
             "hardware", "installed", "revoked_at", "location")


@dataclass
class TomlFile:
    """One parsed TOML file, with its text so problems can name a line."""

    path: Path
    data: dict[str, Any]
    text: str

    def line(self, key: str, table: str = "") -> int:
        """The line on which ``key`` (in ``[table]``) is written, or 1."""
        return locate(self.text, key, table)

    def where(self, key: str, table: str = "") -> str:
        """``FILE:LINE: key`` for a problem message."""
        dotted = f"{table}.{key}" if table else key
        return f"{self.path}:{self.line(key, table)}: {dotted}"


@dataclass
class RegistryFiles:
    """Every file of a registry folder, parsed; ``problems`` holds syntax errors."""

    root: Path
    community: TomlFile | None
    nodes: dict[str, TomlFile] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_files(root: str | Path) -> RegistryFiles:
    """Parse community.toml and every nodes/*.toml, collecting syntax errors."""
    base = Path(root)
    problems: list[str] = []
    community_path = base / COMMUNITY_FILE
    if not community_path.exists():
        return RegistryFiles(base, None, {}, [f"{community_path}: not found; is {base} a "
                                              "registry folder? (create one with "
                                              "'meshhub-provision registry init')"])
    community = _read_toml(community_path, problems)
    nodes: dict[str, TomlFile] = {}
    nodes_dir = base / NODES_DIR
    if nodes_dir.is_dir():
        for path in sorted(nodes_dir.glob("*.toml")):
            parsed = _read_toml(path, problems)
            if parsed is not None:
                nodes[path.stem] = parsed
    return RegistryFiles(base, community, nodes, problems)


def dump_toml(data: dict[str, Any], order: tuple[str, ...]) -> str:
    """TOML text of ``data`` with keys in ``order`` first (then the rest, sorted)."""
    ordered = {k: data[k] for k in order if k in data and data[k] is not None}
    ordered.update({k: data[k] for k in sorted(data) if k not in ordered and data[k] is not None})
    return tomli_w.dumps(ordered)


def write_community(root: Path, data: dict[str, Any]) -> Path:
    """Write community.toml atomically with the stable key order."""
    return atomic_write(root / COMMUNITY_FILE, dump_toml(data, COMMUNITY_KEYS))


def write_node(root: Path, data: dict[str, Any]) -> Path:
    """Write nodes/<name>.toml atomically with the stable key order."""
    return atomic_write(root / NODES_DIR / f"{data['name']}.toml", dump_toml(data, NODE_KEYS))


def locate(text: str, key: str, table: str = "") -> int:
    """The first line where ``key = ...`` appears inside ``[table]`` (top level if empty)."""
    current = ""
    header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
    assign = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")
    table_line = 1
    for number, line in enumerate(text.splitlines(), start=1):
        if match := header.match(line):
            current = match.group(1)
            if current == key and not table:
                return number
            if current == table:
                table_line = number
        elif (match := assign.match(line)) and match.group(1) == key and current == table:
            return number
    return table_line


def _read_toml(path: Path, problems: list[str]) -> TomlFile | None:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})")
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = match.group(1) if match else "1"
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        problems.append(f"{path}:{line}: syntax error: {reason}; fix the TOML syntax")
        return None
    return TomlFile(path, data, text)
