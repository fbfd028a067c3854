"""The ``meshhub`` command: everything a node's operator does from a shell.

Errors a person can meet print as ``meshhub: error: ...`` and exit non-zero;
set ``MESHHUB_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from node.errors import NodeError

#: Subcommands, loaded only when used so that ``meshhub --help`` stays quick
#: and a daemon's command does not import what it does not need.
SUBCOMMANDS: dict[str, str] = {
    "config": "node.cli.config_cmd:config",
    "identity": "node.cli.config_cmd:identity",
    "net": "node.cli.net_cmd:net",
    "gate": "node.cli.gate_cmd:gate",
    "hw": "node.cli.hw_cmd:hw",
    "agent": "node.cli.health_cmd:agent",
    "status": "node.cli.health_cmd:status",
    "prometheus-config": "node.cli.health_cmd:prometheus_config",
    "store": "node.cli.store_cmd:store",
    "organiser": "node.cli.organiser_cmd:organiser",
    "post": "node.cli.post_cmd:post",
    "sync": "node.cli.sync_cmd:sync",
    "lab": "node.cli.lab_cmd:lab",
    "library": "node.cli.library_cmd:library",
    "update": "node.cli.update_cmd:update",
    "diag": "node.cli.diag_cmd:diag",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SUBCOMMANDS:
            module_name, attr = SUBCOMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config_path", envvar="MESHHUB_CONFIG", metavar="FILE",
              type=click.Path(dir_okay=False),
              help="The node.toml to use (default: $MESHHUB_CONFIG or /etc/meshhub/node.toml).")
@click.option("--verbose", "-v", count=True, help="Log more (repeat for debug output).")
@click.version_option(package_name="meshhub", prog_name="meshhub")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """meshhub: run and look after one node of a neighbourhood's Wi-Fi mesh.

    Every node serves the neighbourhood's hub (listings, notices, a library),
    routes for its neighbours and lets residents' phones through its captive
    portal. Start with 'meshhub config check' on a new node.toml.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"config_path": config_path}


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command, turning known errors into one clear line."""
    try:
        result = cli.main(args=argv, prog_name="meshhub", standalone_mode=False)
        # Without standalone mode click returns ctx.exit(n)'s code instead of exiting.
        if isinstance(result, int) and not isinstance(result, bool) and result:
            sys.exit(result)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("meshhub: aborted", err=True)
        sys.exit(1)
    except (NodeError, OSError) as exc:
        if os.environ.get("MESHHUB_DEBUG"):
            raise
        for number, line in enumerate(str(exc).splitlines() or [repr(exc)]):
            prefix = "meshhub: error: " if number == 0 else "  "
            click.echo(prefix + line, err=True)
        sys.exit(1)
