"""``meshhub gate``: let a device through, stop it, or list who is let through (root)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from node.cli.common import load_node_config

if TYPE_CHECKING:
    from node.gate import GateManager


def _manager(ctx: click.Context) -> GateManager:
    from node.gate import GateManager, effective_mode

    cfg = load_node_config(ctx, required=False)
    return GateManager.from_config(cfg, mode=effective_mode(cfg))


def _duration(text: str) -> int:
    from node.gate.manager import parse_duration_ms

    try:
        return max(1, parse_duration_ms(text) // 1000)
    except ValueError:
        raise click.BadParameter(f"{text!r}: use e.g. 90s, 30m, 12h or 1d") from None


@click.group()
def gate() -> None:
    """The captive gate's allow set (the portal does this when a resident presses Connect)."""


@gate.command("allow")
@click.argument("ip")
@click.option("--mac", default=None, help="Bind to this MAC (default: the one the node sees).")
@click.option("--for", "duration", default=None, metavar="DURATION",
              help="How long, e.g. 90s, 30m, 12h (default: gate.allow_minutes).")
@click.pass_context
def gate_allow(ctx: click.Context, ip: str, mac: str | None, duration: str | None) -> None:
    """Let the device at IP through, as if its resident had pressed Connect."""
    seconds = _duration(duration) if duration else None
    status = _manager(ctx).allow(ip, mac=mac, seconds=seconds)
    click.echo(f"{status.ip} ({status.mac}) let through for {status.seconds_remaining}s")


@gate.command("remove")
@click.argument("ip")
@click.pass_context
def gate_remove(ctx: click.Context, ip: str) -> None:
    """Stop letting the device at IP through (its next probe shows the portal again)."""
    status = _manager(ctx).remove(ip)
    click.echo(f"{status.ip} removed")


@gate.command("list")
@click.pass_context
def gate_list(ctx: click.Context) -> None:
    """Every device let through, with the seconds it has left."""
    manager = _manager(ctx)
    elements = manager.elements()
    click.echo(f"mode: {manager.mode}; {len(elements)} device(s) let through")
    for element in elements:
        click.echo(f"  {element.ip:<15} {element.mac}  {element.seconds_remaining}s left")
