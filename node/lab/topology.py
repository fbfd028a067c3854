"""Which lab nodes are linked: line, ring, grid or a seeded random connected graph."""

from __future__ import annotations

import math
import random

from node.errors import ConfigError

TOPOLOGIES = ("line", "ring", "grid", "random")


def links(nodes: int, topology: str, seed: int = 0) -> list[tuple[int, int]]:
    """Pairs ``(a, b)`` of 1-based node numbers with ``a < b``, each one veth link."""
    if nodes < 1:
        raise ConfigError([f"--nodes: {nodes} must be at least 1"])
    if topology == "line" or (topology == "ring" and nodes < 3):
        return [(i, i + 1) for i in range(1, nodes)]
    if topology == "ring":
        return [(i, i + 1) for i in range(1, nodes)] + [(1, nodes)]
    if topology == "grid":
        width = math.ceil(math.sqrt(nodes))
        pairs = []
        for i in range(1, nodes + 1):
            if i % width and i + 1 <= nodes:
                pairs.append((i, i + 1))
            if i + width <= nodes:
                pairs.append((i, i + width))
        return pairs
    if topology == "random":
        rng = random.Random(seed)  # noqa: S311 (a reproducible layout, not a secret)
        links = {(rng.randint(1, i - 1), i) for i in range(2, nodes + 1)}  # a spanning tree
        for _ in range(nodes // 2):  # plus a few extra links for loops
            a, b = sorted(rng.sample(range(1, nodes + 1), 2)) if nodes > 1 else (1, 1)
            if a != b:
                links.add((a, b))
        return sorted(links)
    raise ConfigError([f"--topology: {topology!r} is not one of {', '.join(TOPOLOGIES)}"])
