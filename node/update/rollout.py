"""Staged rollout: the share of nodes that install a release rises over its rollout period.

On the release date no node installs it yet; after ``rollout_days`` every node
does; in between the share grows linearly. Which nodes go first is decided by
a number each node draws from the hash of its own public key and the version:
stable for that node and release (asking again gives the same answer), spread
evenly over the mesh, and different for the next release (the same nodes are
not always the guinea pigs). ``rollout_days = 0`` means every node at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib

SECONDS_PER_DAY = 86400


def rollout_share(release_date: str, rollout_days: int, now: dt.datetime) -> float:
    """The share of nodes (0.0 to 1.0) that should be running the release at ``now`` (UTC)."""
    start = dt.datetime.fromisoformat(release_date).replace(tzinfo=dt.UTC)
    elapsed = (now - start).total_seconds()
    if rollout_days <= 0:
        return 1.0 if elapsed >= 0 else 0.0
    return min(1.0, max(0.0, elapsed / (rollout_days * SECONDS_PER_DAY)))


def node_draw(node_public_key: str, version: str) -> float:
    """This node's fixed number in [0, 1) for ``version`` (SHA-256 of key and version)."""
    digest = hashlib.sha256(f"meshhub rollout\n{node_public_key}\n{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def should_install(node_public_key: str, version: str, release_date: str, rollout_days: int,
                   now: dt.datetime) -> bool:
    """True when this node's turn for ``version`` has come (its draw is below the share)."""
    share = rollout_share(release_date, rollout_days, now)
    return share >= 1.0 or node_draw(node_public_key, version) < share
