"""``meshhub store``: look after the node's content database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from node.cli.common import load_node_config
from node.errors import StoreError

if TYPE_CHECKING:
    from node.hub import Hub
    from node.store import Store


@contextlib.contextmanager
def node_hub(ctx: click.Context) -> Iterator[tuple[Store, Hub]]:
    """This node's store and Hub (from node.toml), closed afterwards."""
    from node.hub import open_hub

    store, hub = open_hub(load_node_config(ctx))
    try:
        yield store, hub
    finally:
        store.close()


def _print_counts(title: str, counts: dict[str, int]) -> None:
    click.echo(title)
    for key, value in counts.items():
        click.echo(f"  {key:<20} {value}")


@click.group()
def store() -> None:
    """The content store: signed entries and the views built from them.

    The database is data_dir/hub.sqlite3 (see 'meshhub config show').
    """


@store.command("rebuild")
@click.pass_context
def store_rebuild(ctx: click.Context) -> None:
    """Rebuild every view and the search index from the signed log.

    Safe at any time: the log is the truth and is not changed. Prints the
    figures before and after; they differ only if the views were damaged.
    """
    with node_hub(ctx) as (db, _):
        _print_counts("before:", db.counts())
        _print_counts("after:", db.rebuild())


@store.command("verify")
@click.pass_context
def store_verify(ctx: click.Context) -> None:
    """Check every stored entry's id, signature, body hash and signer.

    Exits 1 and lists the entries with problems, if any.
    """
    with node_hub(ctx) as (db, _):
        total = db.counts()["entries"]
        problems = db.verify()
    for entry_id, problem in problems:
        click.echo(f"{entry_id}: {problem}")
    if problems:
        raise StoreError(f"{len(problems)} of {total} entries failed verification")
    click.echo(f"{total} entries verified: ok")


@store.command("stats")
@click.pass_context
def store_stats(ctx: click.Context) -> None:
    """Show what the store holds, and the replication vector and digest."""
    from node.identity import fingerprint

    with node_hub(ctx) as (db, _):
        click.echo(f"database: {db.path}")
        _print_counts("content:", db.counts())
        click.echo(f"digest: {db.digest()}")
        click.echo("log (node fingerprint: last sequence number):")
        for author, seq in sorted(db.vector().items()):
            mine = "  (this node)" if author == db.identity.public_key else ""
            click.echo(f"  {fingerprint(author)}: {seq}{mine}")
