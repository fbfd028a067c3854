"""Helpers shared by the ``meshhub`` subcommands."""

from __future__ import annotations

import click

from node.config import NodeConfig, defaults, find_config, load_config


def load_node_config(ctx: click.Context, *, required: bool = True) -> NodeConfig:
    """The node.toml named by ``--config``/``$MESHHUB_CONFIG`` (or the default path).

    With ``required=False`` a missing default file yields the declared defaults.
    """
    path = find_config((ctx.find_root().obj or {}).get("config_path"))
    if not path.exists() and not required:
        return defaults()
    return load_config(path)
