"""``meshhub net``: show (and write) the node's network plan."""

from __future__ import annotations

import shlex

import click

from node.cli.common import load_node_config


@click.group()
def net() -> None:
    """The node's network: access point, mesh, routing, DHCP/DNS and the captive gate."""


@net.command("plan")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Also write every rendered file into this folder (nothing is applied).")
@click.pass_context
def net_plan(ctx: click.Context, out_dir: str | None) -> None:
    """Show the addresses, the files that would be written and the commands that would run.

    Nothing on this machine is changed; with --out the files are written into DIR
    so they can be read or compared.
    """
    from node.net import build_plan

    cfg = load_node_config(ctx, required=False)
    plan = build_plan(cfg)
    a = plan.addresses
    derived = " (derived from node.name; let the registry assign it)"
    click.echo("Addresses")
    click.echo(f"  node number     {a.node_number}")
    click.echo(f"  mesh address    {a.mesh_address}/32 in {a.mesh_range}"
               f"{derived if a.mesh_address_derived else ''}")
    click.echo(f"  client subnet   {a.client_subnet} from {a.subnet_pool}"
               f"{' (derived from the node number)' if a.client_subnet_derived else ''}")
    click.echo(f"  portal          {a.portal_address} on {cfg.wifi.ap_interface}"
               f" (names: {', '.join(a.hub_names)})")
    click.echo(f"  DHCP range      {a.dhcp_first} - {a.dhcp_last}, "
               f"{cfg.clients.lease_minutes} min leases")
    click.echo(f"  captive API     {a.captive_api_url} (DHCP option 114)")
    click.echo(f"  uplink          {cfg.clients.uplink_interface or 'none (offline node)'}")
    click.echo("\nFiles")
    for planned in plan.files:
        click.echo(f"  {planned.path}  {oct(planned.mode)[2:]}  {planned.size:>5} bytes"
                   f"  {planned.purpose}")
    click.echo("\nCommands, in order")
    for number, command in enumerate(plan.commands, start=1):
        click.echo(f"  {number:>2}. {shlex.join(command)}")
    if out_dir:
        written = plan.write_to(out_dir)
        click.echo(f"\nWrote {len(written)} files to {out_dir}")


@net.command("up")
@click.pass_context
def net_up(ctx: click.Context) -> None:
    """Bring this node's links up: mesh address, mesh radio, access point address (root).

    Run at every boot by meshhub-net.service, before the agent; idempotent. It
    starts no daemon and loads no gate (the agent does both, gate first).
    """
    from node.gate.manager import run_command
    from node.net import check_network
    from node.net.links import bring_up

    cfg = load_node_config(ctx, required=True)
    for line in bring_up(cfg, check_network(cfg), run_command):
        click.echo(f"  {line}")


@net.command("apply")
@click.option("--root", "root", type=click.Path(file_okay=False), default=None,
              help="Write the files under this folder (e.g. an image) and run nothing.")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.option("--net-dir", "net_dir_option", type=click.Path(file_okay=False), default=None,
              help="Keep the rendered files in this folder instead of /etc/meshhub/net "
                   "(the radio lab: one folder per node).")
@click.option("--no-daemons", is_flag=True,
              help="Load the gate and set up the interfaces (mesh radio, access point "
                   "address) but start no hostapd, dnsmasq or babeld: the agent runs them.")
@click.pass_context
def net_apply(ctx: click.Context, root: str | None, dry_run: bool,
              net_dir_option: str | None, no_daemons: bool) -> None:
    """Write the network files atomically and apply them (needs root).

    Files equal to what is on disk are left alone; when nothing changed, nothing runs.
    New files are checked with nft -c and dnsmasq --test first; a failed command puts
    the previous files (kept as NAME.previous) back.
    """
    from pathlib import Path

    from node.gate import effective_mode
    from node.gate.manager import run_command
    from node.gate.mode import with_mode
    from node.net import build_plan
    from node.net.apply import apply_plan
    from node.net.plan import NET_DIR

    cfg = load_node_config(ctx, required=False)
    cfg = with_mode(cfg, effective_mode(cfg))  # the organisers' switch, if any
    if net_dir_option and root:
        raise click.UsageError("--net-dir and --root cannot be used together")
    net_dir = Path(root) / NET_DIR.relative_to("/") if root else NET_DIR
    if net_dir_option:
        net_dir = Path(net_dir_option).resolve()
    plan = build_plan(cfg, net_dir=net_dir)
    if no_daemons:
        plan = plan.without_daemons()
    report = apply_plan(plan, run_command, dry_run=dry_run, run_commands=root is None)
    verb = "would change" if dry_run else "changed"
    for path in report.changed:
        click.echo(f"  {verb}    {path}")
    for path in report.unchanged:
        click.echo(f"  unchanged  {path}")
    for command in report.commands:
        click.echo(f"  {'would run' if dry_run else 'ran'}  {command}")
    if not report.changed:
        click.echo("Nothing changed.")
