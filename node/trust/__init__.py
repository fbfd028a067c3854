"""Which nodes' entries, snapshots and releases this node accepts: the trusted set.

The store and replication ask only ``is_trusted(key)`` of a :class:`TrustedSet`
(:mod:`node.trust.base`). Two implementations: this node's own key plus
``trust.node_keys`` from node.toml (:class:`StaticTrust`,
:mod:`node.trust.static`), and the community registry signed by n-of-m
admins, with revocations (:class:`RegistryTrust`, :mod:`node.trust.registry`,
the one definition of the snapshot and anchors formats; provisioning imports
it). :func:`trust_for_node` (:mod:`node.trust.choice`) chooses between them.
Everything signed is signed over :mod:`node.canonical`'s bytes.
"""

from node.trust.base import TrustedSet
from node.trust.choice import registry_dir, trust_for_node
from node.trust.registry import RegistryTrust, SnapshotRejected
from node.trust.static import StaticTrust, trust_from_config

__all__ = [
    "RegistryTrust",
    "SnapshotRejected",
    "StaticTrust",
    "TrustedSet",
    "registry_dir",
    "trust_for_node",
    "trust_from_config",
]
