"""Which nodes' entries this node accepts: the trusted set.

The store asks only ``is_trusted(key)``. Two implementations: this node's own
key plus ``trust.node_keys`` from node.toml (:class:`StaticTrust`,
:func:`trust_from_config`), and the community registry signed by the
community's admins, with revocations (:class:`node.registry.RegistryTrust`).
:func:`node.sync.trust_source.trust_for_node` chooses between them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from node.config import NodeConfig
    from node.identity import Identity

_KEY = re.compile(r"[0-9a-f]{64}")


@runtime_checkable
class TrustedSet(Protocol):
    """Decides whether entries signed by a node key are accepted."""

    def is_trusted(self, public_key_hex: str) -> bool:
        """True when entries signed by this key (64 lower-case hex) are accepted."""
        ...

    def keys(self) -> frozenset[str]:
        """Every trusted key (for display and diagnostics)."""
        ...


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
    return StaticTrust([identity.public_key, *cfg.get("trust.node_keys")])
