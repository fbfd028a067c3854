"""Accept once, roam everywhere: keyed, expiring tags of accepted devices, gossiped
between the agents of registered nodes and kept only in memory (docs/captive.md,
"Roaming")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from node.roam.keys import day_key, day_number, device_tag, load_secret
from node.roam.messages import REFUSAL_REASONS, Announcement, Entry, Refused
from node.roam.service import RoamService, open_roam_service

if TYPE_CHECKING:
    from node.roam.metrics import RoamMetrics

__all__ = ["REFUSAL_REASONS", "Announcement", "Entry", "Refused", "RoamMetrics", "RoamService",
           "day_key", "day_number", "device_tag", "load_secret", "open_roam_service"]


def __getattr__(name: str) -> Any:
    """``RoamMetrics`` on first use: it imports prometheus_client, which an agent loads at
    its first scrape only (node.health.api)."""
    if name == "RoamMetrics":
        from node.roam.metrics import RoamMetrics

        return RoamMetrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
