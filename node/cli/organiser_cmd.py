"""``meshhub organiser``: organiser accounts, from the node's own shell."""

from __future__ import annotations

import sys

import click

from node.cli.store_cmd import node_hub
from node.store.models import ROLES


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group()
def organiser() -> None:
    """Organiser accounts (residents' associations, the library, the food bank).

    Accounts are replicated: an organiser added here can sign in on every node.
    """


@organiser.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="organiser", show_default=True,
              help="technician: only sees the mesh's health (the technicians' pages); "
                   "organiser: posts and the library; moderator: also residents' "
                   "submissions; admin: also accounts.")
@click.option("--display-name", default="", help="Name shown in the audit (default: NAME).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input (for scripts).")
@click.pass_context
def organiser_add(ctx: click.Context, name: str, role: str, display_name: str,
                  password_stdin: bool) -> None:
    """Create the account NAME; asks for its password (at least 10 characters)."""
    password = _read_password(password_stdin)
    with node_hub(ctx) as (_, hub):
        account = hub.create_account(None, name=name, password=password, role=role,
                                     display_name=display_name)
    click.echo(f"created {account.role} {account.name}")


@organiser.command("list")
@click.pass_context
def organiser_list(ctx: click.Context) -> None:
    """List every account with its role."""
    with node_hub(ctx) as (db, _):
        accounts = db.accounts()
    if not accounts:
        click.echo("no accounts yet; create one with 'meshhub organiser add NAME --role admin'")
    for account in accounts:
        state = "  (disabled)" if account.disabled else ""
        click.echo(f"{account.name:<32} {account.role:<10} {account.display_name}{state}")


@organiser.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True,
              help="Read the new password from the first line of standard input.")
@click.pass_context
def organiser_passwd(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set a new password for NAME."""
    password = _read_password(password_stdin)
    with node_hub(ctx) as (_, hub):
        hub.set_password(None, name, password)
    click.echo(f"password of {name} changed")
