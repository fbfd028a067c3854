"""Accept once, roam everywhere: keyed, expiring tags of accepted devices, gossiped
between the agents of registered nodes and kept only in memory (docs/captive.md,
"Roaming")."""

from __future__ import annotations

from node.roam.keys import day_key, day_number, device_tag, load_secret
from node.roam.messages import REFUSAL_REASONS, Announcement, Entry, Refused
from node.roam.metrics import RoamMetrics
from node.roam.service import RoamService, open_roam_service

__all__ = ["REFUSAL_REASONS", "Announcement", "Entry", "Refused", "RoamMetrics", "RoamService",
           "day_key", "day_number", "device_tag", "load_secret", "open_roam_service"]
