"""The mesh's Prometheus alerting rules: shipped, written by ``meshhub prometheus-config
--rules``, accepted by ``promtool check rules``, covering every alert the mission names,
and firing on the series a node exports (``promtool test rules``)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from click.testing import CliRunner

from node.cli import cli
from tests.conftest import require_tool

#: The alerts a technician is promised (README, docs/health.md) and the rule raising each.
PROMISED = {"node lost": "MeshhubNodeLost", "node down": "MeshhubNodeDown",
            "link degraded": "MeshhubLinkDegraded", "disk full": "MeshhubDiskFull",
            "too hot": "MeshhubTooHot", "undervoltage": "MeshhubUndervoltage",
            "uplink down": "MeshhubUplinkDown"}

#: Series as two nodes export them: n2 too hot from the start, n3 unreachable after 1 min.
UNIT_TESTS = """
rule_files: [{rules}]
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      - series: 'up{{job="meshhub", instance="10.42.0.2:9180"}}'
        values: '1x20'
      - series: 'up{{job="meshhub", instance="10.42.0.3:9180"}}'
        values: '1 1 0x18'
      - series: 'meshhub_alert_active{{job="meshhub", instance="10.42.0.2:9180", kind="too_hot"}}'
        values: '1x20'
      - series: 'meshhub_alert_active{{job="meshhub", instance="10.42.0.2:9180", kind="disk_full"}}'
        values: '0x20'
      - series: 'meshhub_roam_refused_announcements_total{{job="meshhub", instance="10.42.0.2:9180", reason="stale"}}'
        values: '0 0 0 1 1 1'
    alert_rule_test:
      - eval_time: 4m
        alertname: MeshhubNodeDown
        exp_alerts:
          - exp_labels: {{severity: critical, job: meshhub, instance: "10.42.0.3:9180"}}
            exp_annotations:
              summary: "Node 10.42.0.3:9180 does not answer"
              description: {down}
      - eval_time: 2m
        alertname: MeshhubNodeDown
        exp_alerts: []
      - eval_time: 6m
        alertname: MeshhubTooHot
        exp_alerts:
          - exp_labels: {{severity: warning, job: meshhub, instance: "10.42.0.2:9180",
                         kind: too_hot}}
            exp_annotations:
              summary: "10.42.0.2:9180 is too hot"
              description: {hot}
      - eval_time: 6m
        alertname: MeshhubDiskFull
        exp_alerts: []
      - eval_time: 2m
        alertname: MeshhubRoamingRefused
        exp_alerts:
          - exp_labels: {{severity: info, job: meshhub, instance: "10.42.0.2:9180",
                         reason: stale}}
            exp_annotations:
              summary: "10.42.0.2:9180 refused roaming announcements (stale)"
              description: {roam}
"""  # noqa: E501 (series names with their labels, as promtool reads them)


def write_rules(tmp_path: Path) -> Path:
    """The rules file as a technician gets it: ``meshhub prometheus-config --rules``."""
    target = tmp_path / "meshhub-rules.yml"
    result = CliRunner().invoke(cli, ["-c", str(tmp_path / "none.toml"), "prometheus-config",
                                      "--rules", str(target), "--output",
                                      str(tmp_path / "targets.json")])
    assert result.exit_code == 0, result.output
    assert "rule_files" in result.output
    return target


def alerts(text: str) -> dict[str, dict[str, str]]:
    """Each rule's severity, summary and description (the folded ``>-`` text, as YAML
    reads it: its lines joined by spaces), read from the shipped file's layout."""
    found = {}
    for block in re.split(r"\n      - alert: ", text)[1:]:
        name = block.split("\n", 1)[0].strip()
        folded = re.search(r"description: >-\n((?:            .*\n?)+)", block)
        found[name] = {
            "severity": re.search(r"severity: (\w+)", block).group(1),  # type: ignore[union-attr]
            "summary": re.search(r'summary: "(.*)"', block).group(1),  # type: ignore[union-attr]
            "description": " ".join(line.strip() for line in folded.group(1).splitlines())
            if folded else ""}
    return found


def test_every_promised_alert_has_a_rule_with_advice(tmp_path: Path) -> None:
    rules = alerts(write_rules(tmp_path).read_text())
    assert set(PROMISED.values()) <= set(rules)
    for rule in rules.values():
        assert rule["severity"] in {"critical", "warning", "info"}
        assert rule["summary"] and len(rule["description"]) > 40


def test_promtool_accepts_the_rules_and_they_fire_on_a_nodes_series(tmp_path: Path) -> None:
    require_tool("promtool")
    rules = write_rules(tmp_path)
    checked = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True,
                             text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout
    described = {name: rule["description"] for name, rule in alerts(rules.read_text()).items()}
    tests = tmp_path / "rules-test.yml"
    tests.write_text(UNIT_TESTS.format(
        rules=rules.name, down=json.dumps(described["MeshhubNodeDown"]),
        hot=json.dumps(described["MeshhubTooHot"]),
        roam=json.dumps(described["MeshhubRoamingRefused"])), encoding="utf-8")
    tested = subprocess.run(["promtool", "test", "rules", str(tests)], capture_output=True,
                            text=True, timeout=60, check=False, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
