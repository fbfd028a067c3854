"""``meshhub library``: add files from the node's own disk to the library.

For files too large to upload through the portal (a Wikipedia ZIM archive
copied onto the node's USB disk), and for a whole folder of books, documents,
audio and video at once. Files go through the same checks as uploads; see
docs/library.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from node.cli.store_cmd import node_hub
from node.errors import PermissionDenied

if TYPE_CHECKING:

    from node.hub import Hub
    from node.library import Importer

MIB = 1024 * 1024

_AS = click.option("--as", "actor", required=True, metavar="ORGANISER",
                   help="The organiser account adding the files (shown in the audit).")
_NO_VERIFY = click.option("--no-verify", is_flag=True,
                          help="Skip a ZIM archive's whole-file checksum (minutes for tens of "
                               "GB); only if you compared its checksum after downloading.")
_COPY = click.option("--copy", is_flag=True,
                     help="Always copy into the library, never hard-link the file.")


def _importer(hub: Hub, actor: str, no_verify: bool, copy: bool) -> Importer:
    from node.library import Importer

    account = hub.store.account(actor)
    if account is None or account.disabled:
        raise PermissionDenied(f"{actor!r} is not an enabled organiser account "
                               "(see 'meshhub organiser list')")
    return Importer(hub, actor, verify=not no_verify, link=not copy)


@click.group()
def library() -> None:
    """Add files on this node's disk to the library (large ZIM archives, whole folders)."""


@library.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_AS
@click.option("--title", default="", help="Title (default: from the file's own metadata).")
@click.option("--collection", default="", help="Collection, e.g. 'Health'.")
@_NO_VERIFY
@_COPY
@click.pass_context
def library_add(ctx: click.Context, file: Path, actor: str, title: str, collection: str,
                no_verify: bool, copy: bool) -> None:
    """Add FILE to the library as ORGANISER; prints the new item's id.

    The file is hashed, checked (type by content; a ZIM archive must be
    intact) and hard-linked into the library when on the same filesystem,
    so a large archive is neither read into memory nor stored twice.
    """
    with node_hub(ctx) as (_, hub):
        importer = _importer(hub, actor, no_verify, copy)
        size = file.stat().st_size
        with click.progressbar(length=size, label=f"Reading {file.name}", file=None,
                               show_pos=False) as bar:
            result = importer.add(file, title=title, collection=collection,
                                  progress=bar.update)
    if result.status == "added" and result.item is not None:
        click.echo(f"added: {result.item.title} ({result.item.media_type}, "
                   f"{size / MIB:,.1f} MiB)", err=True)
        click.echo(result.item.id)
    elif result.status == "skipped" and result.item is not None:
        click.echo(f"skipped: {file}: {result.reason}", err=True)
        click.echo(result.item.id)
    else:
        raise click.ClickException(f"{file}: refused: {result.reason}")


@library.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_AS
@click.option("--collection", default="", help="Put every added item in this collection.")
@_NO_VERIFY
@_COPY
@click.pass_context
def library_import(ctx: click.Context, directory: Path, actor: str, collection: str,
                   no_verify: bool, copy: bool) -> None:
    """Add every file under DIRECTORY to the library as ORGANISER.

    Titles, authors and languages come from the files (EPUB, PDF, audio tags,
    ZIM metadata), else from the file names. Files already in the library
    (same content, whatever the name) are skipped; files of other types are
    refused. Exits 1 when anything was refused.
    """
    from node.library.importer import iter_files

    count = sum(1 for _ in iter_files(directory))
    with node_hub(ctx) as (_, hub):
        importer = _importer(hub, actor, no_verify, copy)
        with click.progressbar(length=count, label=f"Importing {count} files") as bar:
            results = importer.import_dir(directory, collection=collection,
                                          on_result=lambda _result: bar.update(1)).results
    added = [r for r in results if r.status == "added"]
    skipped = [r for r in results if r.status == "skipped"]
    refused = [r for r in results if r.status == "refused"]
    click.echo(f"{len(added)} added, {len(skipped)} skipped, {len(refused)} refused")
    for heading, group in (("Added", added), ("Skipped", skipped), ("Refused", refused)):
        if group:
            click.echo(f"{heading}:")
        for result in group:
            name = result.path.relative_to(directory)
            if result.item is not None and result.status == "added":
                click.echo(f"  {name}: “{result.item.title}” ({result.item.media_type})")
            else:
                click.echo(f"  {name}: {result.reason}")
    if refused:
        ctx.exit(1)
