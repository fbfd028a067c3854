"""An existing Prometheus watches the mesh: Debian's real ``prometheus`` in a namespace
of its own, cabled to n1 of a 20-node lab grid, scrapes every agent through the file-based
service discovery ``meshhub prometheus-config`` writes, with the rules ``--rules`` writes.

What a technician checks: every node ``up == 1`` through Prometheus's HTTP API, the
nodes' own values arrive (each sees the 19 others), the mesh's alert rules are loaded
and evaluated, and a node that dies is ``up == 0`` with ``MeshhubNodeDown`` pending.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import psutil
import pytest

from bench import netlab, waiting
from node.lab import MeshLab, lab_namespaces
from node.lab.observer import Observer
from tests.conftest import require_root, require_tool

pytestmark = pytest.mark.root

NODES = 20
EVERY_AGENT = {f"10.42.0.{i}:9180" for i in range(1, NODES + 1)}
wait_for = functools.partial(waiting.wait_for, interval=1)


def instances_at(observer: Observer, expression: str, value: float) -> set[str]:
    """The instances whose sample of ``expression`` is ``value`` now."""
    found = observer.query(expression) or {}
    return {instance for instance, seen in found.items() if seen == value}


def test_prometheus_scrapes_every_node_and_loads_the_mesh_rules(tmp_path: Path) -> None:
    require_root()
    require_tool("ip", "babeld", "dnsmasq", "nft", "curl", "prometheus", "promtool")
    lab_id = netlab.lab_tag()
    state = tmp_path / "lab"
    lab: MeshLab | None = None
    observer: Observer | None = None
    try:
        lab = MeshLab.up(NODES, "grid", state_dir=state, lab_id=lab_id, portal=False,
                         hello_interval=1.0, wait=240)
        # Every 5 s, a scrape may take 4 s: a loaded CI machine answers slowly.
        observer = Observer.attach(lab, "n1", interval=5, folder=tmp_path)
        # n1 names every node babeld routes to once its agent has sampled the mesh; the
        # technician re-runs prometheus-config as nodes join (docs/health.md).
        wait_for("n1's prometheus-config to list all 20 agents",
                 lambda: set(observer.write_targets()) == EVERY_AGENT, timeout=60)
        wait_for("Prometheus to scrape every node with up == 1",
                 lambda: instances_at(observer, 'up{job="meshhub"}', 1) == EVERY_AGENT,
                 timeout=120)
        wait_for("every node's own view of the mesh (19 other nodes) to arrive",
                 lambda: instances_at(observer, "meshhub_mesh_nodes", NODES - 1)
                 == EVERY_AGENT, timeout=60)

        def evaluated_rules() -> dict[str, Any] | None:
            groups = (observer.api("rules") or {}).get("groups") or []
            rules = {r["name"]: r for g in groups if g["name"] == "meshhub" for r in g["rules"]}
            return rules if rules and all(r["health"] == "ok" for r in rules.values()) else None

        rules = wait_for("the meshhub rule group to load and evaluate", evaluated_rules,
                         timeout=60)
        assert isinstance(rules, dict)
        assert {"MeshhubNodeDown", "MeshhubNodeLost", "MeshhubLinkDegraded",
                "MeshhubDiskFull", "MeshhubTooHot", "MeshhubUndervoltage",
                "MeshhubUplinkDown"} <= set(rules)
        assert all(r["type"] == "alerting" and r["state"] == "inactive"
                   for r in rules.values()), rules

        # A node loses power: Prometheus sees it down and the rule starts counting.
        lab.kill("n20")
        wait_for("n20 to be up == 0 in Prometheus",
                 lambda: instances_at(observer, 'up{job="meshhub"}', 0) == {"10.42.0.20:9180"},
                 timeout=60)

        def pending_node_down() -> bool:
            alerts = (observer.api("alerts") or {}).get("alerts") or []
            return any(a["labels"].get("alertname") == "MeshhubNodeDown"
                       and a["labels"].get("instance") == "10.42.0.20:9180"
                       and a["state"] in ("pending", "firing") for a in alerts)

        wait_for("MeshhubNodeDown to be pending for n20", pending_node_down, timeout=60)
    except AssertionError as exc:
        if observer is None:
            raise
        targets = (observer.api("targets") or {}).get("activeTargets") or []
        failing = {t["labels"].get("instance"): t.get("lastError") for t in targets
                   if t.get("health") != "up"}
        raise AssertionError(f"{exc}\ntargets not up: {failing}\nprometheus.log ends:\n"
                             f"{observer.log_tail()}") from None
    finally:
        if observer is not None:
            observer.close()
        if lab is not None:
            lab.down()
    assert not [ns for ns in lab_namespaces() if ns.startswith(f"mhl-{lab_id}-")]
    left = [p.info for p in psutil.process_iter(["pid", "cmdline"])
            if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert not left, left
