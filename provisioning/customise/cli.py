"""``meshhub-provision customise TARGET NODE-NAME``: the volunteer's command."""

from __future__ import annotations

import click

from provisioning.customise import customise as run_customise
from provisioning.customise.base_os import FORMATS


@click.command("customise")
@click.argument("target", type=click.Path(dir_okay=False))
@click.argument("node_name")
@click.option("--registry", "-r", "registry_dir", envvar="MESHHUB_REGISTRY", default=".",
              show_default=True, metavar="DIR", type=click.Path(file_okay=False),
              help="The registry folder (default: $MESHHUB_REGISTRY or the current folder).")
@click.option("--secrets", type=click.Path(file_okay=False),
              help="Folder holding the node's key from 'registry register' (default: "
                   "../secrets next to the registry).")
@click.option("--wifi-country", metavar="CC",
              help="Two-letter country where the node stands (default: the community's).")
@click.option("--ssh-key", "ssh_key", type=click.Path(dir_okay=False, exists=True),
              help="Your SSH public key file (e.g. ~/.ssh/id_ed25519.pub) for the node's "
                   "admin account; without it SSH stays off.")
@click.option("--user", default="pi", show_default=True,
              help="Account the SSH key is for (its password is locked: key login only).")
@click.option("--timezone", metavar="ZONE", help="Time zone such as Europe/Berlin.")
@click.option("--os-format", type=click.Choice(("auto", *FORMATS)), default="auto",
              show_default=True, help="The base image's first-boot format (auto detects it).")
def customise(target: str, node_name: str, registry_dir: str, secrets: str | None,
              wifi_country: str | None, ssh_key: str | None, user: str, timezone: str | None,
              os_format: str) -> None:
    """Write NODE_NAME's settings, key and registry snapshot into TARGET.

    TARGET is a node image file or a flashed card (e.g. /dev/sdc). Only its
    FAT boot partition is changed, without mounting it; nothing is changed
    when a check fails. See docs/customising.md.
    """
    done = run_customise(target, node_name, registry=registry_dir, secrets=secrets,
                         wifi_country=wifi_country.upper() if wifi_country else None,
                         ssh_key_file=ssh_key, timezone=timezone, os_format=os_format,
                         user=user)
    part = done.boot.partition
    click.echo(f"{target}: boot partition {part.number} ({done.boot.scheme.upper()}, "
               f"{done.boot.fat.kind}, at {part.start // 1024 // 1024} MiB)")
    click.echo(f"base system format: {done.os_format}")
    for path in done.written:
        click.echo(f"  wrote {path}")
    for note in done.notes:
        click.echo(f"note: {note}")
    click.echo(f"done: {node_name} (key {done.key_fingerprint}, registry serial {done.serial}); "
               "files read back identical")
