"""Node health: samples, on-disk history, alerts, Prometheus metrics and the agent's API.

See ``docs/health.md`` for what is collected, the JSON schema and the metrics.
"""

from node.health.alerts import KINDS, Alert, AlertKind, AlertTracker, Thresholds
from node.health.collector import (
    SCHEMA_VERSION,
    Collector,
    CollectorSettings,
    NetCounters,
    SensorReading,
    Sources,
)
from node.health.monitor import HealthMonitor
from node.health.ring import HealthRing, ring_capacity

__all__ = [
    "KINDS",
    "SCHEMA_VERSION",
    "Alert",
    "AlertKind",
    "AlertTracker",
    "Collector",
    "CollectorSettings",
    "HealthMonitor",
    "HealthRing",
    "NetCounters",
    "SensorReading",
    "Sources",
    "Thresholds",
    "ring_capacity",
]
