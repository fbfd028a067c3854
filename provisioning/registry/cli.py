"""``meshhub-provision registry ...``: keep the community's registry of nodes."""

from __future__ import annotations

from pathlib import Path

import click

from node.atomic import atomic_write
from node.identity import fingerprint
from node.trust.registry import admin_set_from, dump_anchors
from provisioning.registry import ops, signing
from provisioning.registry.checks import check_registry
from provisioning.registry.files import read_files


def _root(ctx: click.Context) -> Path:
    return Path(ctx.ensure_object(dict)["registry"])


@click.group()
@click.option("--registry", "-r", "registry_dir", envvar="MESHHUB_REGISTRY", default=".",
              show_default=True, metavar="DIR", type=click.Path(file_okay=False),
              help="The registry folder (default: $MESHHUB_REGISTRY or the current folder).")
@click.pass_context
def registry(ctx: click.Context, registry_dir: str) -> None:
    """The community registry: nodes, addresses, keys and admin signatures."""
    ctx.obj = {"registry": registry_dir}


@registry.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", required=True, help="The community's name, e.g. 'Elm Street Mesh'.")
@click.option("--ssid", required=True, help="The Wi-Fi name residents join.")
@click.option("--country", required=True, help="Two-letter Wi-Fi country code, e.g. DE.")
@click.option("--admin-key", "admin_keys", multiple=True, metavar="FILE",
              type=click.Path(dir_okay=False, exists=True),
              help="An admin's public key file (NAME.key.pub) or key file; repeat for each "
                   "admin. The file name is the admin's name. Default: create one in "
                   "../secrets/.")
@click.option("--threshold", type=int, default=1, show_default=True,
              help="How many admins must sign a registry snapshot.")
@click.option("--mesh-range", default=ops.DEFAULT_MESH_RANGE, show_default=True,
              help="Range of the nodes' own /32 mesh addresses.")
@click.option("--client-range", default=ops.DEFAULT_CLIENT_RANGE, show_default=True,
              help="Range split into one /24 per node for residents' devices.")
@click.option("--access-channel", type=click.IntRange(1, 196), default=ops.DEFAULT_CHANNEL,
              show_default=True, help="Wi-Fi channel of the access point residents join.")
@click.option("--mesh-channel", type=click.IntRange(1, 196),
              help="Channel of the mesh link between nodes (default: the access channel; a "
                   "single-radio node uses one channel for both, so give a channel in another "
                   "band only if your nodes have a second radio).")
def init_cmd(directory: str, name: str, ssid: str, country: str, admin_keys: tuple[str, ...],
             threshold: int, mesh_range: str, client_range: str, access_channel: int,
             mesh_channel: int | None) -> None:
    """Create a registry folder DIRECTORY with its community.toml."""
    mesh_channel = mesh_channel or access_channel
    if (mesh_channel > 14) != (access_channel > 14):
        click.echo(f"note: mesh channel {mesh_channel} and access channel {access_channel} are "
                   "in different bands: only nodes with a second radio use both; a single-radio "
                   f"node runs both on channel {access_channel}", err=True)
    pairs = [(ops.admin_name(f), f) for f in admin_keys]
    if not pairs:
        key_file = ops.default_secrets_dir(Path(directory)) / "admin.key"
        ident = ops.new_admin_key(key_file)
        click.echo(f"created admin key {key_file} ({ident.fingerprint}); keep it secret")
        pairs = [("admin", str(key_file))]
    path = ops.init_registry(directory, name=name, ssid=ssid, country=country,
                             admin_keys=pairs, threshold=threshold, mesh_range=mesh_range,
                             client_range=client_range,
                             channels={"mesh": mesh_channel, "access": access_channel})
    click.echo(f"created {path} (admins: {', '.join(n for n, _ in pairs)}; threshold "
               f"{threshold}; channels: access {access_channel}, mesh {mesh_channel})")


@registry.group("admin-key")
def admin_key() -> None:
    """Admins' signing keys."""


@admin_key.command("new")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
def admin_key_new(ctx: click.Context, file: str) -> None:
    """Create a new admin key FILE (mode 0600) and FILE.pub to share with the others.

    When the registry (-r or $MESHHUB_REGISTRY) exists and does not list the
    key yet, it prints the [[admins]] lines to add to its community.toml;
    before there is a registry, 'registry init --admin-key FILE.pub' adds it.
    """
    ident = ops.new_admin_key(file)
    name = ops.admin_name(file)
    click.echo(f"created {file} (secret) and {file}.pub; fingerprint {ident.fingerprint}")
    community = _root(ctx) / ops.COMMUNITY_FILE
    if not community.is_file():
        click.echo(f"send {file}.pub to whoever creates the registry: 'registry init "
                   f"--admin-key {file}.pub' adds it")
    elif ident.public_key not in community.read_text(encoding="utf-8"):
        click.echo(f"add to {community}:\n\n[[admins]]\n"
                   f'name = "{name}"\npublic_key = "{ident.public_key}"')


@registry.command("register")
@click.argument("node_name")
@click.option("--location", metavar="LAT,LON", help="Where the node stands, e.g. 52.52,13.405.")
@click.option("--owner", default="", help="Who looks after the node (name and contact).")
@click.option("--hardware", default="", help="Board and radio, e.g. 'Raspberry Pi 4'.")
@click.option("--secrets", type=click.Path(file_okay=False),
              help="Folder for the node's private key (default: ../secrets next to the "
                   "registry; never inside it).")
@click.pass_context
def register_cmd(ctx: click.Context, node_name: str, location: str | None, owner: str,
                 hardware: str, secrets: str | None) -> None:
    """Register NODE_NAME: new key, next free mesh address and client subnet."""
    where = ops.parse_location(location) if location else None
    done = ops.register_node(_root(ctx), node_name, secrets=secrets, location=where,
                             owner=owner, hardware=hardware)
    rec = done.record
    click.echo(f"registered {rec['name']}: mesh address {rec['mesh_address']}, "
               f"client subnet {rec['client_subnet']}, key {fingerprint(rec['public_key'])}")
    click.echo(f"private key: {done.key_file} (keep it out of the registry; it goes on "
               "the node's card)")


@registry.command("revoke")
@click.argument("node_name")
@click.pass_context
def revoke_cmd(ctx: click.Context, node_name: str) -> None:
    """Revoke NODE_NAME: its entries stop counting once admins sign a new snapshot."""
    ops.revoke_node(_root(ctx), node_name)
    click.echo(f"revoked {node_name}; now sign and export a new snapshot")


@registry.command("list")
@click.pass_context
def list_cmd(ctx: click.Context) -> None:
    """List the registered nodes with status, addresses and key fingerprint."""
    files = ops.load_registry(_root(ctx))
    rows = [("NAME", "STATUS", "MESH ADDRESS", "CLIENT SUBNET", "KEY")]
    for name in sorted(files.nodes):
        data = files.nodes[name].data
        rows.append((name, data["status"], data["mesh_address"], data["client_subnet"],
                     fingerprint(data["public_key"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@registry.command("check")
@click.pass_context
def check_cmd(ctx: click.Context) -> None:
    """Check every file; list every problem with file, line and key."""
    files = read_files(_root(ctx))
    problems = check_registry(files)
    if problems:
        for line in problems:
            click.echo(line, err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"{_root(ctx)}: ok ({len(files.nodes)} nodes)")


@registry.command("sign")
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False),
              help="Your admin key file.")
@click.option("--retiring", is_flag=True,
              help="Sign with an admin key that community.toml no longer lists (rotation).")
@click.pass_context
def sign_cmd(ctx: click.Context, key_file: str, retiring: bool) -> None:
    """Sign the registry's current state with your admin key."""
    result = signing.sign(_root(ctx), key_file, retiring=retiring)
    if result.dropped:
        click.echo(f"the registry changed: {result.dropped} old signature(s) dropped")
    click.echo(f"signed serial {result.serial} as {result.signer}: {result.valid} of "
               f"{result.threshold} signatures needed")


@registry.command("export")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--against", type=click.Path(dir_okay=False, exists=True),
              help="The snapshot (or anchors.json) nodes hold now: check they will accept it.")
@click.pass_context
def export_cmd(ctx: click.Context, out: str, against: str | None) -> None:
    """Write the signed snapshot OUT that nodes receive."""
    signed = signing.export(_root(ctx), out, against)
    for line in signing.describe_signers(signed):
        click.echo(f"  {line}")
    click.echo(f"wrote {out}: serial {signed.serial}, {len(signed.active_keys)} active nodes")


@registry.command("anchors")
@click.argument("out", type=click.Path(dir_okay=False))
@click.pass_context
def anchors_cmd(ctx: click.Context, out: str) -> None:
    """Write the trust anchors (admin keys and threshold) a new card ships with."""
    files = ops.load_registry(_root(ctx))
    community = signing.snapshot_content(files)["community"]
    atomic_write(out, dump_anchors(admin_set_from(community, "community.toml")))
    click.echo(f"wrote {out}")
