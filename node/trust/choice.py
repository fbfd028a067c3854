"""Which trusted set a node uses: the community registry once installed, else node.toml.

A node whose ``<data_dir>/registry`` holds the community's trust anchors
(``anchors.json``, put there by provisioning) trusts the node keys of the
newest valid signed snapshot (:class:`~node.trust.registry.RegistryTrust`; newer
snapshots arrive by replication). Until then it trusts its own key plus
``trust.node_keys`` (:func:`~node.trust.static.trust_from_config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from node.trust.base import TrustedSet
from node.trust.registry import ANCHORS_FILE, RegistryTrust
from node.trust.static import trust_from_config

if TYPE_CHECKING:
    from node.config import NodeConfig
    from node.identity import Identity

REGISTRY_DIR = "registry"


def registry_dir(cfg: NodeConfig) -> Path:
    """Where this node keeps its registry anchors and snapshot."""
    return cfg.data_dir / REGISTRY_DIR


def trust_for_node(cfg: NodeConfig, identity: Identity) -> tuple[TrustedSet, RegistryTrust | None]:
    """The trusted set to use, and the RegistryTrust if that is what it is.

    Raises :class:`~node.trust.registry.SnapshotRejected` when the registry
    directory exists but its anchors or snapshot are unreadable or invalid:
    a node must not silently fall back to a looser trust.
    """
    directory = registry_dir(cfg)
    if (directory / ANCHORS_FILE).exists():
        registry = RegistryTrust(directory)
        return registry, registry
    return trust_from_config(cfg, identity), None
