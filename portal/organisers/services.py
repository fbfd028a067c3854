"""Where the organisers' views get the store, the hub and node.toml settings.

One small seam, so that auth and every organisers' module ask the same way
(the per-request objects come from :mod:`portal.db`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from flask import abort, current_app, g

from node.config import NodeConfig
from node.hub import Hub

if TYPE_CHECKING:
    from node.store import Store

T = TypeVar("T")


def hub() -> Hub:
    """This request's :class:`node.hub.Hub`."""
    from portal import db

    return db.get_hub()


def store() -> Store:
    """This request's :class:`node.store.Store` (read API)."""
    from portal import db

    return db.get_store()


def node_config() -> NodeConfig:
    """This node's ``node.toml``: read a value as ``node_config().portal.upload_max_mb``."""
    config: NodeConfig = current_app.config["NODE_CONFIG"]
    return config


def found(item: T | None) -> T:
    """``item``, or a 404 page when the store has no such item (unknown or deleted)."""
    if item is None:
        abort(404)
    return item


def actor() -> str:
    """The signed-in organiser's account name (views are behind ``login_required``)."""
    return str(g.account.name)
