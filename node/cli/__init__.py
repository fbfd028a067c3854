"""The ``meshhub`` command: everything a node's operator does from a shell.

Errors a person can meet print as ``meshhub: error: ...`` and exit non-zero;
set ``MESHHUB_DEBUG=1`` to see the traceback instead.

The click group is :data:`cli` (:mod:`node.cli.group`), loaded on first use: the
daemon's command line, ``meshhub [-c FILE] [-v] agent``, starts the agent without
click (:mod:`node.cli.daemon`), so a node's longest-running process does not carry it.
"""

from __future__ import annotations

import sys
from typing import Any

from node.cli.daemon import agent_options, run_agent


def __getattr__(name: str) -> Any:
    """``node.cli.cli``, the click group, imported when first asked for."""
    if name == "cli":
        from node.cli.group import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command, turning known errors into one clear line."""
    options = agent_options(sys.argv[1:] if argv is None else argv)
    if options is not None:
        run_agent(options)
    from node.cli.base import run_cli
    from node.cli.group import cli

    run_cli(cli, "meshhub", argv)
