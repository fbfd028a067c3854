"""Roaming refusals on ``/metrics``: one counter per reason, with HELP and TYPE, counts
only (never a tag), and promtool finds nothing to say about them."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from node.health import AlertTracker, Collector, HealthMonitor, HealthRing, Thresholds
from node.health.api import create_app
from node.identity import Identity
from node.roam import REFUSAL_REASONS, RoamMetrics
from node.roam.keys import day_number
from node.roam.messages import MAX_MESSAGE_BYTES, Entry, build
from tests.conftest import require_tool
from tests.node.test_health_collector import fake_sources, settings
from tests.node.test_roam import NOW, pair
from tests.node.test_store_support import FakeClock


def announce(service: Any, body: bytes) -> str:
    """POST ``body`` to the service's ``/roam/v1/announce`` as a neighbour does; the status."""
    seen: list[str] = []
    b"".join(service.wsgi({"REQUEST_METHOD": "POST", "PATH_INFO": "/roam/v1/announce",
                           "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)},
                          lambda status, _headers: seen.append(status)))
    return seen[0]


def scrape(tmp_path: Path, roam: Any) -> str:
    """The agent API's ``/metrics`` text with the roaming collector, as the agent builds it."""
    monitor = HealthMonitor(Collector(settings(), fake_sources()), AlertTracker(Thresholds()),
                            HealthRing(tmp_path / "health.sqlite3", capacity=10))
    try:
        monitor.tick()
        app = create_app(monitor, [RoamMetrics(roam.counts)])
        seen: list[str] = []
        body = b"".join(app({"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET",
                             "QUERY_STRING": "", "wsgi.input": io.BytesIO()},
                            lambda status, _headers: seen.append(status)))
        assert seen == ["200 OK"]
        return body.decode()
    finally:
        monitor.close()


def refusals(text: str) -> dict[str, float]:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    family = families["meshhub_roam_refused_announcements"]
    assert family.type == "counter"
    return {s.labels["reason"]: s.value for s in family.samples if s.name.endswith("_total")}


def test_every_refusal_reason_is_a_counter_from_zero(tmp_path: Path) -> None:
    _first, second, _sent = pair(FakeClock(NOW))
    text = scrape(tmp_path, second)
    assert refusals(text) == dict.fromkeys(REFUSAL_REASONS, 0)
    assert "# HELP meshhub_roam_refused_announcements_total " in text
    assert "# TYPE meshhub_roam_refused_announcements_total counter" in text
    require_tool("promtool")
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done


def test_refused_announcements_are_counted_by_reason_and_no_tag_shows(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    first, second, _sent = pair(clock)
    entry = Entry(day_number(NOW), "ab" * 16, int(NOW) + 600)
    good = build(first._identity, [entry], NOW, flood=False)
    forged = json.loads(good)
    forged["accepted"][0]["until"] += 3600  # a resident stretching an acceptance
    assert announce(second, good) == "204 No Content"
    assert announce(second, good) == "409 Conflict"  # replayed
    assert announce(second, build(Identity.generate(), [entry], NOW, flood=False)).startswith("403")
    assert announce(second, json.dumps(forged).encode()).startswith("403")
    assert announce(second, b"[1, 2]").startswith("400")
    assert announce(second, b"x" * (MAX_MESSAGE_BYTES + 1)).startswith("413")
    text = scrape(tmp_path, second)
    assert refusals(text) == {"oversized": 1, "malformed": 1, "unregistered": 1,
                              "bad-signature": 1, "stale": 0, "replayed": 1}
    found = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert found["meshhub_roam_received_announcements_total"] == 1
    assert found["meshhub_roam_sent_announcements_total"] == 0
    assert "ab" * 16 not in text and first._identity.public_key not in text
