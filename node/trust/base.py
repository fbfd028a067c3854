"""The trusted set: the one question the store and replication ask about a node key."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class TrustedSet(Protocol):
    """Decides whether entries signed by a node key are accepted."""

    def is_trusted(self, public_key_hex: str) -> bool:
        """True when entries signed by this key (64 lower-case hex) are accepted."""
        ...

    def keys(self) -> frozenset[str]:
        """Every trusted key (for display and diagnostics)."""
        ...
