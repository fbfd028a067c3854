"""``meshhub-provision devices`` and ``meshhub-provision flash IMAGE DEVICE``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from provisioning.errors import DeviceRefused, FlashError
from provisioning.flash import devices as blk
from provisioning.flash.source import open_image
from provisioning.flash.target import Target, refuse_same
from provisioning.flash.unmount import unmount, unmount_commands
from provisioning.flash.writer import flash as write_and_verify

_LSBLK_HELP = "Read this lsblk --json -O output instead of running lsblk (rehearsals, tests)."


def _load(lsblk_json: str | None) -> list[blk.Device]:
    if lsblk_json:
        return blk.parse_lsblk(Path(lsblk_json).read_text(encoding="utf-8"))
    return blk.run_lsblk()


@click.command()
@click.option("--lsblk-json", type=click.Path(dir_okay=False, exists=True), help=_LSBLK_HELP)
def devices(lsblk_json: str | None) -> None:
    """List the devices 'flash' would offer, and why the others are excluded."""
    found = [blk.assess(d) for d in _load(lsblk_json)]
    offered = [a for a in found if a.offered]
    click.echo("Offered (removable USB and SD/MMC disks):")
    for a in offered or []:
        d = a.device
        note = f"  [{'; '.join(a.notes)}]" if a.notes else ""
        click.echo(f"  {d.path:<14} {blk.human(d.size):>10}  {d.transport or 'mmc':<5} "
                   f"{d.model or '-'}{note}")
    if not offered:
        click.echo("  (none: insert an SD card or USB stick)")
    click.echo("Excluded:")
    for a in found:
        if a.offered:
            continue
        how = "never" if a.fatal else "only with --i-know-this-is-not-removable"
        click.echo(f"  {a.device.path:<14} {blk.human(a.device.size):>10}  "
                   f"{'; '.join(a.reasons)} ({how})")


@click.command()
@click.argument("image", type=click.Path(dir_okay=False, exists=True))
@click.argument("device")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--i-know-this-is-not-removable", "override", metavar="DEVICE",
              help="Allow a device that is not an offered one: type its path again.")
@click.option("--to-file", is_flag=True,
              help="DEVICE is a regular file (rehearsals and tests); created if missing.")
@click.option("--dry-run", is_flag=True,
              help="Check the image and the device, say what would happen, write nothing.")
@click.option("--lsblk-json", type=click.Path(dir_okay=False, exists=True), help=_LSBLK_HELP)
def flash(image: str, device: str, yes: bool, override: str | None, to_file: bool,
          dry_run: bool, lsblk_json: str | None) -> None:
    """Write IMAGE (.img, .img.gz, .img.xz, .img.zst or a .zip) to DEVICE, then verify it.

    Only removable USB and SD/MMC disks are accepted ('meshhub-provision
    devices' lists them). The card's partitions are unmounted first; the first
    MiB is written last, and everything is read back and compared (SHA-256).
    """
    refuse_same(Path(image), Path(device))
    with open_image(image) as source:
        chosen: blk.Device | None = None
        if not to_file:
            chosen = _choose(device, override, source.expected_size, _load(lsblk_json))
            refuse_same(Path(image), Path(chosen.path))
        what = (f"{chosen.path} ({chosen.model or 'unknown model'}, {blk.human(chosen.size)})"
                if chosen else f"file {device}")
        size = blk.human(source.expected_size) if source.expected_size else "size unknown"
        click.echo(f"image: {image} ({source.kind}, {size})")
        layout = source.check_layout()
        if chosen is not None and layout.end > chosen.size:
            raise DeviceRefused(chosen.path, [f"too small for this image ({blk.human(chosen.size)}"
                                              f" < {blk.human(layout.end)})"], overridable=False)
        sidecar = source.check_sidecar()
        if sidecar is not None:
            click.echo(f"checksum: matches {sidecar}")
        if dry_run:
            click.echo(f"dry run: would erase and write {what}")
            for argv in unmount_commands(chosen) if chosen else []:
                click.echo(f"dry run: would run {' '.join(argv)}")
            return
        if not yes:
            click.confirm(f"Erase everything on {what}?", abort=True)
        if chosen is not None:
            for partition in unmount(chosen):
                click.echo(f"unmounted {partition}")
        with Target.open(chosen.path if chosen else device, to_file=to_file,
                         image=image) as target:
            result = write_and_verify(source, target, progress=True)
    speed = result.written / max(result.write_seconds, 1e-9)
    click.echo(f"done: {blk.human(result.written)} written ({blk.human(int(speed))}/s) and "
               f"verified; SHA-256 {result.sha256}")
    if chosen is not None:
        click.echo(f"you can now remove {chosen.path} (or customise it first)")


def _choose(device: str, override: str | None, image_size: int | None,
            found: list[blk.Device]) -> blk.Device:
    """The lsblk device for ``device`` if the safety rules (and override) allow it."""
    real = os.path.realpath(device) if device.startswith("/") else device
    chosen = blk.find(found, real) or blk.find(found, device)
    if chosen is None:
        parent = next((d for d in found if real in d.partitions), None)
        if parent is not None:
            raise FlashError(f"{device}: is a partition; flash the whole disk {parent.path}")
        if not os.path.exists(device) or os.path.isfile(device):
            what = "a regular file" if os.path.isfile(device) else "not there"
            raise FlashError(f"{device}: {what}, not a disk; to write the image into a file "
                             "(a rehearsal), pass --to-file; for a card see 'meshhub-provision "
                             "devices'")
        raise FlashError(f"{device}: not a disk lsblk knows; see 'meshhub-provision devices'")
    assessment = blk.assess(chosen, image_size)
    if assessment.fatal:
        raise DeviceRefused(chosen.path, list(assessment.reasons), overridable=False,
                            system=assessment.system)
    if assessment.warnings:
        if override not in (chosen.path, device):
            raise DeviceRefused(chosen.path, list(assessment.warnings), overridable=True)
        click.echo(f"override: {chosen.path} accepted although {'; '.join(assessment.warnings)}",
                   err=True)
    return chosen
