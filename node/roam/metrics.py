"""The roaming gossip's counts on the agent's ``/metrics``.

Only counts of announcements leave this module, never a tag, a day or an expiry
(docs/captive.md, "Roaming"). Every refusal reason has a series from the start (0
until the first refusal), so an alerting rule can use ``increase()`` on it without
waiting for the first bad announcement to create the series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from node.roam.messages import REFUSAL_REASONS

#: Returns the roaming service's counters (``RoamService.counts``).
Counts = Callable[[], Mapping[str, int]]


class RoamMetrics(Collector):
    """``meshhub_roam_*`` counters from a :class:`node.roam.RoamService`'s counts."""

    def __init__(self, counts: Counts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        """Yield the roaming counter families (called by the registry at scrape time)."""
        counts = self._counts()
        refused = CounterMetricFamily(
            "meshhub_roam_refused_announcements",
            "Roaming announcements from neighbours refused, by reason (oversized, "
            "malformed, unregistered sender, bad signature, stale, replayed)",
            labels=["reason"])
        for reason in REFUSAL_REASONS:
            refused.add_metric([reason], float(counts.get(f"refused_{reason}", 0)))
        yield refused
        for key, name, doc in (
                ("received", "meshhub_roam_received_announcements",
                 "Roaming announcements from neighbours checked and taken"),
                ("sent", "meshhub_roam_sent_announcements",
                 "Roaming announcements a neighbour took from this node"),
                ("send_failed", "meshhub_roam_send_failures",
                 "Roaming announcements a neighbour did not take (unreachable, refused)")):
            yield CounterMetricFamily(name, doc, value=float(counts.get(key, 0)))
