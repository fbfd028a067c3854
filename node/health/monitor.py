"""The health monitor: collector + alerts + history, and the health document.

One :meth:`HealthMonitor.tick` takes a sample, updates the alerts, queues
both for the on-disk ring and makes the result what ``/api/health`` and
``/metrics`` show.  The agent calls it on a timer; tests call it directly.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from node.config import NodeConfig
from node.config.schema import parse_coordinates
from node.errors import NodeError
from node.health.alerts import AlertTracker, Thresholds
from node.health.collector import Collector, CollectorSettings, Sources
from node.health.ring import HealthRing, ring_capacity

log = logging.getLogger("meshhub.health")
Json = dict[str, Any]


class HealthMonitor:
    """Keeps the latest health document and its history; thread-safe."""

    def __init__(self, collector: Collector, tracker: AlertTracker, ring: HealthRing) -> None:
        self.collector = collector
        self.tracker = tracker
        self.ring = ring
        self._lock = threading.Lock()
        self._latest: Json | None = ring.latest()  # what the node knew before a reboot

    @classmethod
    def from_config(cls, cfg: NodeConfig, sources: Sources | None = None) -> HealthMonitor:
        """Build the monitor a node's agent runs, from its ``node.toml``."""
        h = cfg.health
        uplink = cfg.clients.uplink_interface
        settings = CollectorSettings(
            node_name=cfg.node.name, node_key=_public_key(cfg.data_dir),
            data_dir=str(cfg.data_dir),
            leases_file=h.leases_file or str(cfg.data_dir / "dnsmasq.leases"),
            uplink_interface=uplink, services=tuple(h.services),
            location=cfg.node.location,
            coordinates=parse_coordinates(cfg.node.coordinates))
        limits = Thresholds(disk_full_percent=h.disk_full_percent,
                            too_hot_celsius=h.too_hot_celsius,
                            low_voltage_volts=h.low_voltage_volts,
                            uplink_required=bool(uplink),
                            link_degraded_cost=h.link_degraded_cost,
                            node_lost_seconds=h.node_lost_seconds)
        ring = HealthRing(cfg.data_dir / "health.sqlite3",
                          ring_capacity(h.history_days, h.interval_seconds),
                          write_interval_seconds=h.write_interval_seconds)
        return cls(Collector(settings, sources), AlertTracker(limits), ring)

    def tick(self) -> Json:
        """Take one sample, update alerts, queue it for the history; return the document."""
        sample = self.collector.sample()
        started, ended = self.tracker.update(sample)
        for alert in started:
            log.warning("alert started: %s %s: %s", alert.kind, alert.subject, alert.detail)
        for alert in ended:
            log.info("alert ended: %s %s", alert.kind, alert.subject)
        for alert in started + ended:
            self.ring.record_alert(alert.as_dict())
        sample["alerts"] = [a.as_dict() for a in self.tracker.active.values()]
        sample["problems"] = self.collector.problems.summary()
        self.ring.add(sample)
        with self._lock:
            self._latest = sample
        return sample

    def latest(self) -> Json | None:
        """The newest health document (``None`` before the first sample ever)."""
        with self._lock:
            return self._latest

    def snapshot(self) -> tuple[Json | None, list[Json], list[str]]:
        """(latest document, active alerts, alert kinds evaluated) for ``/metrics``."""
        latest = self.latest()
        alerts = list(latest.get("alerts", [])) if latest else []
        return latest, alerts, self.tracker.evaluated_kinds(latest)

    def close(self) -> None:
        """Write the queued history to disk and close it."""
        self.ring.close()


def _public_key(data_dir: object) -> str:
    """The node's public key (hex) from its identity file, or "" when it has none yet."""
    from node.identity import KEY_FILE_NAME, load_identity

    try:
        return load_identity(Path(str(data_dir)) / KEY_FILE_NAME).public_key
    except (OSError, ValueError, NodeError):
        return ""
