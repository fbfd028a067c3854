"""The ``meshhub`` command: everything a node's operator does from a shell.

Errors a person can meet print as ``meshhub: error: ...`` and exit non-zero;
set ``MESHHUB_DEBUG=1`` to see the traceback instead.

The click group is :data:`cli` (:mod:`node.cli.group`), loaded on first use: the
daemon's command line, ``meshhub [-c FILE] [-v] agent``, starts the agent without
click (:mod:`node.cli.daemon`), so a node's longest-running process does not carry it.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any


def __getattr__(name: str) -> Any:
    """``node.cli.cli``, the click group, imported when first asked for."""
    if name == "cli":
        from node.cli.group import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command, turning known errors into one clear line."""
    # By name, like the group's subcommands: what the portal imports (node.cli.base, so
    # this package too) must not lead to the agent and its imports (OpenSSL among them).
    daemon = importlib.import_module("node.cli.daemon")
    options = daemon.agent_options(sys.argv[1:] if argv is None else argv)
    if options is not None:
        daemon.run_agent(options)
    from node.cli.base import run_cli
    from node.cli.group import cli

    run_cli(cli, "meshhub", argv)
