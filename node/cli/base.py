"""What the three commands (meshhub, meshhub-provision, meshhub-portal) share.

A click group that imports its subcommands on first use, and an entry point
that turns the errors a person can meet into one clear line: ``PROG: error:
...`` with a non-zero exit and no traceback unless ``MESHHUB_DEBUG`` is set.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from node.cli.output import error_lines
from node.errors import NodeError


class LazyGroup(click.Group):
    """A click group whose subcommands (``name -> "module:attribute"``) load on first use.

    Keeps ``--help`` quick and a daemon's command free of what it does not need.
    """

    def __init__(self, *args: Any, subcommands: dict[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subcommands = subcommands if subcommands is not None else {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.subcommands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.subcommands:
            module_name, attr = self.subcommands[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)


def run_cli(group: click.Command, prog: str, argv: list[str] | None = None) -> None:
    """Run ``group`` as the program ``prog`` and exit with its status.

    Ctrl-C ends with "PROG: stopped" (status 130), a declined prompt with
    "PROG: aborted" (1), a NodeError or OSError with "PROG: error: ..." (1).
    """
    try:
        result = group.main(args=argv, prog_name=prog, standalone_mode=False)
        # Without standalone mode click returns ctx.exit(n)'s code instead of exiting.
        if isinstance(result, int) and not isinstance(result, bool) and result:
            sys.exit(result)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo(f"{prog}: stopped", err=True)
        sys.exit(130)
    except click.exceptions.Abort:
        click.echo(f"{prog}: aborted", err=True)
        sys.exit(1)
    except (NodeError, OSError) as exc:
        if os.environ.get("MESHHUB_DEBUG"):
            raise
        for line in error_lines(prog, exc):
            click.echo(line, err=True)
        sys.exit(1)
