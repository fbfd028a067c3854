"""The agent's HTTP API as a WSGI app, and the status / prometheus-config commands."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from node.cli import cli
from node.health import AlertTracker, Collector, HealthMonitor, HealthRing, Thresholds
from node.health import api as api_module
from node.health.api import create_app
from node.health.document import check_document, normalise_target
from tests.conftest import require_tool
from tests.node.test_health_collector import fake_sources, settings


@pytest.fixture
def monitor(tmp_path: Path) -> Any:
    mon = HealthMonitor(Collector(settings(), fake_sources()), AlertTracker(Thresholds()),
                        HealthRing(tmp_path / "health.sqlite3", capacity=100))
    yield mon
    mon.close()


def get(app: Any, path: str, query: str = "", method: str = "GET") -> tuple[str, dict, bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app({"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": method,
                         "wsgi.input": io.BytesIO()}, start_response))
    return seen["status"], seen["headers"], body


def test_health_document_follows_the_schema(monitor: Any) -> None:
    app = create_app(monitor)
    assert get(app, "/api/health")[0].startswith("503")  # before the first sample
    monitor.tick()
    status, headers, body = get(app, "/api/health")
    assert status == "200 OK" and headers["Content-Type"].startswith("application/json")
    doc = json.loads(body)
    assert check_document(doc) == []
    assert doc["schema_version"] == 1
    assert set(doc) >= {"time", "node", "uptime_seconds", "cpu", "memory", "disk", "soc",
                        "sensors", "network", "clients", "services", "mesh", "mesh_note",
                        "alerts", "problems"}
    # the fixture board is undervolted, throttled, its eMMC worn out and dnsmasq is down
    assert {a["kind"] for a in doc["alerts"]} == {"sd_wear", "undervoltage", "throttled",
                                                  "service_down"}
    assert all(a["ended"] is None and a["check"] and a["started"] == doc["time"]
               for a in doc["alerts"])


def test_metrics_and_errors(monitor: Any) -> None:
    app = create_app(monitor)
    monitor.tick()
    status, headers, body = get(app, "/metrics")
    assert status == "200 OK" and headers["Content-Type"].startswith("text/plain; version=")
    assert b"meshhub_cpu_usage_ratio 0.125" in body
    assert get(app, "/nope")[0].startswith("404")
    assert get(app, "/api/health", method="POST")[0].startswith("405")
    assert get(app, "/api/health/history", "limit=100000")[0].startswith("400")
    assert get(app, "/api/health/history", "since=yesterday")[0].startswith("400")


def test_history_is_capped(monitor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(monitor)
    clock = {"now": 1_800_000_000.0}
    monitor.collector.sources.clock = lambda: clock["now"]
    for _ in range(40):
        monitor.tick()
        clock["now"] += 30
    body = json.loads(get(app, "/api/health/history", "limit=1000")[2])
    assert len(body["samples"]) == 40 and body["step"] == 1
    monkeypatch.setattr(api_module, "MAX_RESPONSE_BYTES", 20_000)
    status, _, raw = get(app, "/api/health/history", "limit=1000")
    thinned = json.loads(raw)
    assert status == "200 OK" and len(raw) <= 20_000 and thinned["step"] > 1
    alerts = json.loads(get(app, "/api/health/alerts")[2])["alerts"]
    assert "service_down" in {a["kind"] for a in alerts}


def test_malformed_documents_are_refused() -> None:
    assert check_document([1, 2]) == ["not a JSON object"]
    problems = check_document({"schema_version": 99, "node": {}, "time": "noon"})
    assert "schema_version is 99, this node reads 1" in problems
    assert "node.name missing" in problems and "cpu is not an object" in problems


def test_targets_are_normalised() -> None:
    assert normalise_target("10.42.0.7") == "10.42.0.7:9180"
    assert normalise_target("node-3.mesh:9190") == "node-3.mesh:9190"
    assert normalise_target("[fd00::7]:9180") == "[fd00::7]:9180"
    for bad in ("http://x", "a b", "host:99999", ""):
        with pytest.raises(ValueError, match="host:port"):
            normalise_target(bad)


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f'[node]\ndata_dir = "{tmp_path / "data"}"\n'
                    f'[agent]\nport = 1\npeers = ["10.42.0.7", "node-3.mesh:9190"]\n{extra}')
    return path


def test_prometheus_config_is_valid_file_sd(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = tmp_path / "meshhub-targets.json"
    result = CliRunner().invoke(cli, ["--config", str(config), "prometheus-config",
                                      "--output", str(out), "--node", "10.42.0.9"])
    assert result.exit_code == 0, result.output
    groups = json.loads(out.read_text())
    assert groups[0]["targets"] == ["127.0.0.1:1", "10.42.0.7:9180", "node-3.mesh:9190",
                                    "10.42.0.9:9180"]
    assert "file_sd_configs" in result.output
    require_tool("promtool")
    prom = tmp_path / "prometheus.yml"
    prom.write_text("scrape_configs:\n  - job_name: meshhub\n    file_sd_configs:\n"
                    f"      - files: ['{out}']\n")
    done = subprocess.run(["promtool", "check", "config", str(prom)], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_config_rejects_a_bad_peer(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(write_config(tmp_path)),
                                      "prometheus-config", "--node", "http://x"])
    assert result.exit_code != 0 and "host:port" in result.output


def test_status_samples_directly_when_no_agent_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(write_config(tmp_path)), "status"])
    assert result.exit_code == 0, result.output
    assert "sampled now (the agent is not running)" in result.output
    assert "mesh      no data (mesh.routing is off" in result.output
    as_json = CliRunner().invoke(cli, ["--config", str(write_config(tmp_path)), "status",
                                       "--json"])
    assert check_document(json.loads(as_json.output)) == []


def test_health_names_the_node_and_its_key(tmp_path: Path) -> None:
    """The agent's document carries the node's public key once the node has its identity."""
    from node.config import parse_config
    from node.identity import load_or_create_identity

    data = tmp_path / "data"
    cfg = parse_config(f'[node]\nname = "elm-1"\ndata_dir = "{data}"\n', tmp_path / "node.toml")
    before = HealthMonitor.from_config(cfg, fake_sources()).collector.sample()
    assert before["node"]["name"] == "elm-1" and before["node"]["key"] is None
    identity = load_or_create_identity(data)
    after = HealthMonitor.from_config(cfg, fake_sources()).collector.sample()
    assert after["node"]["key"] == identity.public_key
