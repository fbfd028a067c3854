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
@click.option("--arch", type=click.Choice(("arm64", "amd64")), default="arm64",
              show_default=True,
              help="The node's processor: the wheelhouse is built for it (a Pi is arm64).")
def build(base: str, out: str, wheelhouse: str | None, recipe: str | None, arch: str) -> None:
    """Build OUT from BASE: overlay, units, wheelhouse and the node's venv; no root, no
    mounting."""
    from provisioning.image import build_image, load_recipe

    result = build_image(base, out, wheelhouse=wheelhouse, arch=arch,
                         recipe=load_recipe(recipe) if recipe else None)
    grown = f", root grown by {result.grown_bytes // 2**20} MiB" if result.grown_bytes else ""
    venv = ("its venv ready" if result.venv else
            "no Python 3.11 here to prepare its venv: first boot installs it")
    click.echo(f"built {result.path}: meshhub {result.version} ({venv}), "
               f"{result.files_written} files "
               f"on the root file system{grown}; {result.size // 2**20} MiB "
               f"({result.allocated // 2**20} MiB on disk) in {result.seconds:.1f} s; "
               "e2fsck -fn and fsck.fat -n passed")


@image.command("base")
@click.option("--arch", type=click.Choice(("arm64", "amd64")), default="amd64",
              show_default=True, help="amd64: PCs, thin clients, VMs (UEFI); arm64: Raspberry Pi.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The base image to write.")
@click.option("--mirror", metavar="URL",
              help="A Debian mirror (default: the recipe's, http://deb.debian.org/debian).")
@click.option("--recipe", type=click.Path(dir_okay=False, exists=True),
              help="Another recipe file (default: the images/recipe.toml shipped with meshhub).")
def base(arch: str, out: str, mirror: str | None, recipe: str | None) -> None:
    """Build a Debian 12 base image from Debian's packages (root; about 700 MB download)."""
    from provisioning.image import load_recipe
    from provisioning.image.base import build_base

    result = build_base(arch, out, mirror=mirror, recipe=load_recipe(recipe) if recipe else None,
                        progress=lambda line: click.echo(line, err=True))
    click.echo(f"built {result.path}: Debian 12 {result.arch}, {len(result.packages)} packages "
               f"asked for; {result.size // 2**20} MiB ({result.allocated // 2**20} MiB on disk) "
               f"in {result.seconds:.0f} s; next: meshhub-provision image build --arch "
               f"{result.arch} --base {result.path} --out node.img")


@image.command("try")
@click.argument("image_file", metavar="IMG", type=click.Path(dir_okay=False))
@click.option("--radios", type=click.IntRange(0, 16), default=2, show_default=True,
              help="Simulated Wi-Fi radios (mac80211_hwsim) inside the machine.")
@click.option("--memory", "memory_mb", type=click.IntRange(256, 16384), default=1024,
              show_default=True, help="Memory of the machine in MB (a Pi Zero 2 W has 512).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Host port the hub is forwarded to (127.0.0.1 only; 0 picks a free one).")
@click.option("--keep-changes", is_flag=True,
              help="Write the boot's changes into IMG (default: thrown away at the end).")
@click.option("--arch", type=click.Choice(("auto", "amd64", "arm64")), default="auto",
              show_default=True,
              help="The image's processor; auto reads it from the boot partition. arm64 (a "
                   "Raspberry Pi image) boots its own kernel on QEMU's virt board, emulated: "
                   "minutes, not seconds.")
def try_(image_file: str, radios: int, memory_mb: int, port: int, keep_changes: bool,
         arch: str) -> None:
    """Boot IMG in QEMU: console here, hub at http://127.0.0.1:PORT; Ctrl-C stops it."""
    from provisioning.image.trial import try_image

    status = try_image(image_file, radios=radios, memory_mb=memory_mb, port=port,
                       keep=keep_changes, say=lambda line: click.echo(line, err=True),
                       arch=None if arch == "auto" else arch)
    raise SystemExit(status)
