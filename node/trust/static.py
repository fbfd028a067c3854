"""The static trusted set: this node's own key plus ``trust.node_keys`` from node.toml.

What a node trusts until the community registry's anchors are installed
(:func:`node.trust.choice.trust_for_node` chooses).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.config import NodeConfig
    from node.identity import Identity

_KEY = re.compile(r"[0-9a-f]{64}")


class StaticTrust:
    """A fixed set of trusted keys."""

    def __init__(self, keys: Iterable[str]) -> None:
        normalised = set()
        for key in keys:
            key = key.strip().lower()
            if not _KEY.fullmatch(key):
                raise ValueError(f"not an Ed25519 public key (64 hex digits): {key!r}")
            normalised.add(key)
        self._keys = frozenset(normalised)

    def is_trusted(self, public_key_hex: str) -> bool:
        """True when the key is in the set."""
        return public_key_hex in self._keys

    def keys(self) -> frozenset[str]:
        """The keys of the set."""
        return self._keys

    def __repr__(self) -> str:
        return f"StaticTrust({len(self._keys)} keys)"


def trust_from_config(cfg: NodeConfig, identity: Identity) -> StaticTrust:
    """This node's own key plus ``trust.node_keys`` from node.toml."""
    return StaticTrust([identity.public_key, *cfg.trust.node_keys])
