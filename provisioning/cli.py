"""The ``meshhub-provision`` command: what a volunteer runs on their own laptop.

Errors a person can meet print as ``meshhub-provision: error: ...`` and exit
non-zero; set ``MESHHUB_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import logging

import click

from node.cli.base import LazyGroup, run_cli

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


@click.group(cls=LazyGroup, subcommands=SUBCOMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
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
    run_cli(cli, "meshhub-provision", argv)
