"""``meshhub-provision release make|sign|verify``: signed releases (docs/updates.md)."""

from __future__ import annotations

import click


@click.group("release")
def release() -> None:
    """Make a signed release that nodes install on their own (docs/updates.md)."""


@release.command("make")
@click.option("--version", "version", help="The version (must equal the meshhub wheel's).")
@click.option("--channel", default="stable", show_default=True, help="Release channel.")
@click.option("--rollout-days", type=click.IntRange(0, 365), default=7, show_default=True,
              help="Days over which nodes take it up (0: all at once).")
@click.option("--wheelhouse", type=click.Path(file_okay=False, exists=True),
              help="Wheels to ship (default: build them from this checkout).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="A new folder for the release.")
def make(version: str | None, channel: str, rollout_days: int, wheelhouse: str | None,
         out: str) -> None:
    """Write a release folder: the wheels and an unsigned manifest.json."""
    from provisioning.release import make_release

    manifest = make_release(out, version=version, channel=channel, rollout_days=rollout_days,
                            wheelhouse=wheelhouse)
    click.echo(f"release {manifest.version} ({manifest.channel}, {len(manifest.files)} files, "
               f"rollout {manifest.rollout_days} days from {manifest.date}) in {out}; "
               "now each admin runs 'release sign'")


@release.command("sign")
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False, exists=True),
              help="Your admin key file (from 'registry admin-key new').")
@click.option("--anchors", type=click.Path(dir_okay=False, exists=True),
              help="The community's anchors.json, to count how many signatures are valid.")
def sign(folder: str, key_file: str, anchors: str | None) -> None:
    """Add your admin signature to the release in FOLDER (after checking its files)."""
    from provisioning.release import sign_release

    manifest, good, threshold = sign_release(folder, key_file, anchors)
    needed = f" of {threshold} needed" if threshold is not None else ""
    click.echo(f"signed release {manifest.version}: {good} valid signature(s){needed}")


@release.command("verify")
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option("--anchors", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The trust anchors a node has (anchors.json).")
@click.option("--running", help="Also refuse unless newer than this version, as a node does.")
def verify(folder: str, anchors: str, running: str | None) -> None:
    """Check FOLDER as a node would: signatures, version, every file's hash."""
    from provisioning.release import verify_release

    manifest = verify_release(folder, anchors, running)
    click.echo(f"release {manifest.version} is valid: a node trusting {anchors} accepts it")
