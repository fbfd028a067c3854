"""The ``meshhub-provision`` command: what a volunteer runs on their own laptop.

Errors a person can meet print as ``meshhub-provision: error: ...`` and exit
non-zero; set ``MESHHUB_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from node.errors import NodeError

#: Subcommands, imported only when used (flashing does not load the registry code).
SUBCOMMANDS: dict[str, str] = {
    "registry": "provisioning.registry.cli:registry",
    "devices": "provisioning.flash.cli:devices",
    "flash": "provisioning.flash.cli:flash",
    "customise": "provisioning.customise.cli:customise",
    "discover": "provisioning.discover:discover",
    "poster": "provisioning.poster:poster",
    "image": "provisioning.image.cli:image",
    "release": "provisioning.release.cli:release",
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
@click.option("--verbose", "-v", count=True, help="Log more (repeat for debug output).")
@click.version_option(package_name="meshhub", prog_name="meshhub-provision")
def cli(verbose: int) -> None:
    """meshhub-provision: prepare nodes for a neighbourhood mesh from your laptop.

    Keep the community's registry of nodes (addresses, keys, admin signatures),
    write node images to SD cards safely, and more. See docs/registry.md and
    docs/flashing.md.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command, turning known errors into one clear line."""
    try:
        code = cli.main(args=argv, prog_name="meshhub-provision", standalone_mode=False)
        if isinstance(code, int) and code:  # a command's Exit(n) is returned, not raised
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("meshhub-provision: aborted", err=True)
        sys.exit(1)
    except (NodeError, OSError) as exc:
        if os.environ.get("MESHHUB_DEBUG"):
            raise
        for number, line in enumerate(str(exc).splitlines() or [repr(exc)]):
            prefix = "meshhub-provision: error: " if number == 0 else "  "
            click.echo(prefix + line, err=True)
        sys.exit(1)
