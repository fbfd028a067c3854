"""``meshhub-provision discover``: find nodes on the local network and check them against
the registry.

Nodes announce ``_meshhub._tcp.local.`` with zeroconf; the service type and
the TXT keys (``name``, ``key``, ``fp``, ``version``, ``role``, and ``state``
when a node reports one, e.g. ``setup``) are defined by the node side in
:mod:`node.mesh.discovery` (``Announcement.txt``) and only read here. A node
whose key is not an active key of the registry is flagged: it may be a node
someone set up outside the community, or one pretending to be a neighbour.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from node.identity import fingerprint
from node.mesh.discovery import AGENT_SERVICE


@dataclass(frozen=True)
class SeenNode:
    """One announced node, as read from its zeroconf service."""

    service: str
    name: str
    addresses: tuple[str, ...]
    port: int
    public_key: str
    announced_fingerprint: str
    version: str
    state: str


def browse(timeout: float, interfaces: Sequence[str] | None = None) -> list[SeenNode]:
    """Browse for ``timeout`` seconds; return every node that answered, sorted by name.

    ``interfaces`` restricts zeroconf to those local addresses (default: all).
    """
    from zeroconf import InterfaceChoice, ServiceBrowser, ServiceStateChange, Zeroconf

    names: set[str] = set()
    lock = threading.Lock()

    def on_change(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        if state_change is not ServiceStateChange.Removed:
            with lock:
                names.add(name)

    zc = Zeroconf(interfaces=list(interfaces) if interfaces else InterfaceChoice.All)
    try:
        browser = ServiceBrowser(zc, AGENT_SERVICE, handlers=[on_change])
        time.sleep(timeout)
        browser.cancel()
        with lock:
            found = sorted(names)
        seen = [node for name in found if (node := _resolve(zc, name)) is not None]
    finally:
        zc.close()
    return sorted(seen, key=lambda n: (n.name, n.service))


def registry_verdict(node: SeenNode, registered: dict[str, dict[str, Any]]) -> str:
    """``registered``, or why the node is flagged, given the registry's nodes by name."""
    if node.public_key and fingerprint_ok(node) is False:
        return "FLAGGED: announced fingerprint does not match its key"
    by_key = {data["public_key"]: data for data in registered.values()}
    entry = by_key.get(node.public_key)
    if entry is None:
        if node.name in registered:
            return "FLAGGED: key differs from the registered key of this name"
        return "FLAGGED: key not in the registry"
    if entry["status"] != "active":
        return f"FLAGGED: key of revoked node {entry['name']}"
    if entry["name"] != node.name:
        return f"FLAGGED: key registered as {entry['name']}"
    return "registered"


def fingerprint_ok(node: SeenNode) -> bool | None:
    """Whether the announced fingerprint fits the announced key (``None``: cannot tell)."""
    try:
        real = fingerprint(node.public_key)
    except ValueError:
        return False
    return None if not node.announced_fingerprint else real == node.announced_fingerprint


def _resolve(zc: Any, name: str) -> SeenNode | None:
    info = zc.get_service_info(AGENT_SERVICE, name, timeout=3000)
    if info is None:
        return None
    txt = {k.decode("utf-8", "replace"): (v or b"").decode("utf-8", "replace")
           for k, v in info.properties.items()}
    return SeenNode(name, txt.get("name") or name.split(".")[0], tuple(info.parsed_addresses()),
                    int(info.port or 0), txt.get("key", ""), txt.get("fp", ""),
                    txt.get("version", ""), txt.get("state") or txt.get("role", ""))


def _registered(registry: str | None) -> dict[str, dict[str, Any]] | None:
    if not registry:
        return None
    from provisioning.registry.ops import load_registry

    files = load_registry(Path(registry))
    return {name: file.data for name, file in files.nodes.items()}


@click.command("discover")
@click.option("--timeout", type=click.FloatRange(0.5, 600), default=5.0, show_default=True,
              help="Seconds to listen for announcements.")
@click.option("--registry", "-r", "registry_dir", envvar="MESHHUB_REGISTRY", metavar="DIR",
              type=click.Path(file_okay=False, exists=True),
              help="Check keys against this registry (default: $MESHHUB_REGISTRY).")
@click.option("--interface", "interfaces", multiple=True, metavar="ADDRESS",
              help="Listen only on this local address (repeatable; default: every interface).")
def discover(timeout: float, registry_dir: str | None, interfaces: tuple[str, ...]) -> None:
    """Find meshhub nodes on this network: name, address, state and key fingerprint.

    Nodes in setup mode and running nodes both answer. A node whose key is not
    an active key of the registry is flagged.
    """
    registered = _registered(registry_dir)
    nodes = browse(timeout, interfaces or None)
    if not nodes:
        click.echo(f"no meshhub node answered within {timeout:g} s (is the laptop on the "
                   "node's Wi-Fi or cable, and the node switched on?)")
        return
    rows = [("NAME", "ADDRESS", "STATE", "FINGERPRINT", "REGISTRY")]
    for node in nodes:
        fp = fingerprint(node.public_key) if fingerprint_ok(node) is not False \
            else node.announced_fingerprint or "?"
        verdict = registry_verdict(node, registered) if registered is not None else \
            "not checked (no --registry)"
        address = ", ".join(node.addresses) + (f":{node.port}" if node.port else "")
        rows.append((node.name, address, node.state or "?", fp, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True))
                   + "  " + row[4])
    flagged = sum(1 for r in rows[1:] if r[4].startswith("FLAGGED"))
    if flagged:
        click.echo(f"warning: {flagged} node(s) flagged: do not trust them until an admin has "
                   "checked (see docs/customising.md, 'After first boot')")
