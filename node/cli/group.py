"""The ``meshhub`` click group: every subcommand, each loaded on first use.

:func:`node.cli.main` runs it, except for the daemon's own command line
(``meshhub [-c FILE] [-v] agent``), which :mod:`node.cli.daemon` starts without
click.
"""

from __future__ import annotations

import click

from node.cli.base import LazyGroup
from node.cli.output import configure_logging

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
    "broadcast": "node.cli.broadcast_cmd:broadcast",
    "sync": "node.cli.sync_cmd:sync",
    "lab": "node.cli.lab_cmd:lab",
    "library": "node.cli.library_cmd:library",
    "update": "node.cli.update_cmd:update",
    "diag": "node.cli.diag_cmd:diag",
}


@click.group(cls=LazyGroup, subcommands=SUBCOMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
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
    configure_logging(verbose)
    ctx.obj = {"config_path": config_path}

