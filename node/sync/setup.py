"""Building a node's sync service from its configuration (the agent and the CLI use it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from node.blobs import BlobStore
from node.identity import load_or_create_identity
from node.store import Store
from node.sync.service import SyncService, SyncSettings
from node.trust.choice import trust_for_node

if TYPE_CHECKING:
    from node.config import NodeConfig

DATABASE = "hub.sqlite3"
LIBRARY_DIR = "library"


def open_sync_service(cfg: NodeConfig, *, own_port: Callable[[], int | None] = lambda: None,
                      **overrides: Any) -> SyncService:
    """Open this node's store (``data_dir/hub.sqlite3``) and library and a service over them.

    Trust comes from :func:`~node.trust.choice.trust_for_node`. The
    service owns the store: :meth:`SyncService.close` stops it and closes it.
    The store renders no Markdown (the portal does, portal/rendering.py): opened after
    an upgrade that changed the rules, it stores stand-ins for the portal to render.
    ``overrides`` replace :class:`SyncSettings` fields (tests shrink timings).
    """
    data_dir = cfg.data_dir
    identity = load_or_create_identity(data_dir)
    trust, registry = trust_for_node(cfg, identity)
    store = Store.open(data_dir / DATABASE, identity, trust, render=False)
    try:
        return SyncService(store, BlobStore(data_dir / LIBRARY_DIR),
                           SyncSettings.from_config(cfg, **overrides), registry=registry,
                           own_port=own_port)
    except BaseException:
        store.close()
        raise
