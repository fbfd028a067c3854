"""The community registry: nodes, their keys and addresses, signed by the admins.

Public API (``docs/registry.md`` explains the workflow)::

    init_registry, new_admin_key, register_node, revoke_node, load_registry,
    check_registry, read_files, sign, collect, export

The signed snapshot format itself is defined in :mod:`node.trust.registry`.
"""

from __future__ import annotations

from provisioning.registry.checks import check_registry
from provisioning.registry.files import read_files
from provisioning.registry.ops import (
    init_registry,
    load_registry,
    new_admin_key,
    register_node,
    revoke_node,
)
from provisioning.registry.signing import collect, export, sign

__all__ = ["check_registry", "collect", "export", "init_registry", "load_registry",
           "new_admin_key", "read_files", "register_node", "revoke_node", "sign"]
