"""The comment every rendered file starts with, so nobody edits the wrong thing."""

from __future__ import annotations

from node.config import NodeConfig


def header(cfg: NodeConfig, what: str, comment: str = "#") -> str:
    """Lines saying what the file is, that meshhub wrote it, and where to change it."""
    source = str(cfg.path) if cfg.path else "node.toml"
    return (f"{comment} {what}\n"
            f"{comment} Written by `meshhub net` from {source}: change that file, not this one.\n")
