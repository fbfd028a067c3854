"""``meshhub-provision image build``: the volunteer's (or the community's) image command."""

from __future__ import annotations

import click


@click.group("image")
def image() -> None:
    """Build a meshhub node image from a Raspberry Pi OS or Debian base image (docs/images.md)."""


@image.command("build")
@click.option("--base", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The unpacked base image (.img), e.g. Raspberry Pi OS Lite arm64.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The node image to write (the base is not changed).")
@click.option("--wheelhouse", type=click.Path(file_okay=False, exists=True),
              help="Folder with meshhub's wheel and its dependencies' (default: build it from "
                   "this checkout; needs the internet or a pip cache).")
@click.option("--recipe", type=click.Path(dir_okay=False, exists=True),
              help="Another recipe file (default: the images/recipe.toml shipped with meshhub).")
def build(base: str, out: str, wheelhouse: str | None, recipe: str | None) -> None:
    """Build OUT from BASE: overlay, units and wheelhouse; no root, no mounting."""
    from provisioning.image import build_image, load_recipe

    result = build_image(base, out, wheelhouse=wheelhouse,
                         recipe=load_recipe(recipe) if recipe else None)
    grown = f", root grown by {result.grown_bytes // 2**20} MiB" if result.grown_bytes else ""
    click.echo(f"built {result.path}: meshhub {result.version}, {result.files_written} files "
               f"on the root file system{grown}; {result.size // 2**20} MiB "
               f"({result.allocated // 2**20} MiB on disk) in {result.seconds:.1f} s; "
               "e2fsck -fn and fsck.fat -n passed")
