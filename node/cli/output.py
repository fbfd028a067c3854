"""How every ``meshhub`` command logs and reports a known error, without click.

Shared by the click group (:mod:`node.cli.group`, :func:`node.cli.base.run_cli`) and
the agent's own start (:mod:`node.cli.daemon`), so both print the same lines.
"""

from __future__ import annotations

import logging


def configure_logging(verbose: int) -> None:
    """Log warnings and worse, info with one ``-v``, debug with two (every command)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def error_lines(prog: str, exc: BaseException) -> list[str]:
    """The lines a known error prints: ``PROG: error: first line``, the rest indented."""
    return [(f"{prog}: error: " if number == 0 else "  ") + line
            for number, line in enumerate(str(exc).splitlines() or [repr(exc)])]
