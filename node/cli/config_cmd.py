"""``meshhub config`` and ``meshhub identity``: check settings, show the node's key."""

from __future__ import annotations

import json

import click

from node.cli.common import load_node_config
from node.config import SETTINGS, load_config


@click.group()
def config() -> None:
    """Check and show node.toml, the node's configuration file."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def config_check(file: str) -> None:
    """Check FILE against the schema and list every problem with its line.

    Also checks the network settings together (overlapping subnets, an
    address outside its range, a channel the country does not allow...).
    Exits 0 and prints 'ok' when FILE is valid, 1 otherwise; warnings (an
    uplink with no speed set, so no fair share) go to stderr and do not fail.
    """
    from node.net import check_network
    from node.net.render_shaping import shaping_warnings

    cfg = load_config(file)
    check_network(cfg)
    for warning in shaping_warnings(cfg):
        click.echo(f"{file}: warning: {warning}", err=True)
    click.echo(f"{file}: ok")


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML-like text.")
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print every key with its effective value; defaults are marked as such."""
    cfg = load_node_config(ctx, required=False)
    if as_json:
        click.echo(json.dumps(cfg.values, indent=2, sort_keys=True))
        return
    current = None
    for setting in SETTINGS:
        if setting.section != current:
            current = setting.section
            click.echo(f"\n[{current}]")
        value = cfg.values[setting.key]
        note = "" if setting.key in cfg.explicit else "  # default"
        click.echo(f"{setting.name} = {json.dumps(value, ensure_ascii=False)}{note}")


@click.group()
def identity() -> None:
    """The node's Ed25519 identity key."""


@identity.command("show")
@click.pass_context
def identity_show(ctx: click.Context) -> None:
    """Print the node's public key and fingerprint, creating the key if absent."""
    from node.identity import load_or_create_identity

    cfg = load_node_config(ctx)
    ident = load_or_create_identity(cfg.data_dir)
    click.echo(f"public key:  {ident.public_key}")
    click.echo(f"fingerprint: {ident.fingerprint}")
