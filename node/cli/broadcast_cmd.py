"""``meshhub broadcast``: the emergency notice, from the node's own shell (or a script).

Goes through the same checks as the organisers' page: the acting account must
have the broadcast permission, and the end time must be within 7 days.
"""

from __future__ import annotations

import json
import time

import click

from node.cli.post_cmd import ExpiryTime
from node.cli.store_cmd import node_hub


@click.group()
def broadcast() -> None:
    """The emergency notice: put an urgent notice in front of every phone on the mesh.

    Every node holds every phone back at its portal until its resident has read the
    notice (accepted phones are let through again by "I have read this"), until the
    end time or until it is cancelled. See docs/organisers.md, "The emergency notice".
    """


@broadcast.command("send")
@click.option("--as", "actor", required=True, metavar="ORGANISER",
              help="The account sending it: an admin, or one granted the permission.")
@click.option("--title", required=True, help="At most 120 characters.")
@click.option("--body", required=True, help="Markdown, at most 5000 characters.")
@click.option("--until", "ends_at", type=ExpiryTime(), default=None,
              help="When it ends, e.g. 2026-12-01T18:00 (local time); at most 7 days ahead.")
@click.option("--minutes", type=click.IntRange(1, 7 * 24 * 60), default=None,
              help="Or: how many minutes from now it lasts.")
@click.pass_context
def send(ctx: click.Context, actor: str, title: str, body: str, ends_at: int | None,
         minutes: int | None) -> None:
    """Send an emergency broadcast as ORGANISER; prints the notice's id."""
    from node.broadcast import send_broadcast

    if ends_at is not None and minutes is not None:
        raise click.UsageError("give --until or --minutes, not both")
    if minutes is not None:
        ends_at = int(time.time()) + minutes * 60
    with node_hub(ctx) as (_, hub):
        found = send_broadcast(hub, actor, title=title, body=body, ends_at=ends_at)
    click.echo(found.notice)


@broadcast.command("cancel")
@click.option("--as", "actor", required=True, metavar="ORGANISER",
              help="The account ending it (broadcast permission needed).")
@click.pass_context
def cancel(ctx: click.Context, actor: str) -> None:
    """End the emergency broadcast in force now (its notice stays, as an urgent notice)."""
    from node.broadcast import cancel_broadcast

    with node_hub(ctx) as (_, hub):
        cancel_broadcast(hub, actor)
    click.echo("cancelled")


@broadcast.command("show")
@click.pass_context
def show(ctx: click.Context) -> None:
    """The broadcast in force on this node, as JSON ({"active": false} when none)."""
    from node.broadcast import current_broadcast, describe

    with node_hub(ctx) as (store, _):
        click.echo(json.dumps(describe(current_broadcast(store.path, time.time()))))


@broadcast.command("grant")
@click.argument("name")
@click.option("--as", "actor", required=True, metavar="ADMIN", help="The admin granting it.")
@click.option("--withdraw", is_flag=True, help="Take the permission away instead.")
@click.pass_context
def grant(ctx: click.Context, name: str, actor: str, withdraw: bool) -> None:
    """Let account NAME send emergency broadcasts (admins always may)."""
    from node.broadcast import set_permission

    with node_hub(ctx) as (_, hub):
        set_permission(hub, actor, name, not withdraw)
    click.echo(f"{name} {'may not' if withdraw else 'may'} send emergency broadcasts")
