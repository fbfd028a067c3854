"""The node image recipe (``images/recipe.toml``) read into data classes.

The recipe is data only: base images (where to download them, never
downloaded here), Debian packages, units to enable and mask, and the overlay
tree with the modes that differ from the default (files 0644, directories
0755, everything owned by root: the meshhub users only exist once
``systemd-sysusers`` has run on the node).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import images
from provisioning.errors import ProvisionError

RECIPE_FORMAT = "meshhub-image-recipe-v1"
#: The recipe shipped with meshhub.
DEFAULT_RECIPE = Path(images.__file__).parent / "recipe.toml"
FILE_MODE = 0o644
DIR_MODE = 0o755


class RecipeError(ProvisionError, ValueError):
    """The recipe file is malformed (the message names the file and key)."""


@dataclass(frozen=True)
class OverlayFile:
    """One file of the overlay: its source on this computer, its path on the node, its mode."""

    source: Path
    path: PurePosixPath
    mode: int


@dataclass(frozen=True)
class DebianRecipe:
    """What ``image base`` installs with mmdebstrap (the recipe's ``[debian]`` table)."""

    suite: str
    mirror: str
    security_mirror: str
    system: tuple[str, ...]
    arch_packages: dict[str, tuple[str, ...]]
    components: dict[str, tuple[str, ...]]

    def packages(self, arch: str, required: tuple[str, ...]) -> tuple[str, ...]:
        """Every package for ``arch``: the node's, the system's, the kernel and boot loader."""
        return tuple(dict.fromkeys((*self.arch_packages[arch], *self.system, *required)))


@dataclass(frozen=True)
class Recipe:
    """What the image build adds to a base image."""

    path: Path
    packages: tuple[str, ...]
    enable: tuple[str, ...]
    mask: tuple[str, ...]
    target: str
    unit_dir: PurePosixPath
    overlay_dir: Path
    modes: dict[str, int]
    wheelhouse_path: PurePosixPath
    bases: dict[str, dict[str, object]]
    debian: DebianRecipe | None = field(default=None)

    def overlay_files(self) -> list[OverlayFile]:
        """Every overlay file with its path on the node and its mode, sorted by path."""
        result = []
        for dirpath, dirnames, filenames in os.walk(self.overlay_dir):
            dirnames.sort()
            for name in sorted(filenames):
                source = Path(dirpath) / name
                node_path = PurePosixPath("/") / source.relative_to(self.overlay_dir).as_posix()
                result.append(OverlayFile(source, node_path,
                                          self.modes.get(str(node_path), FILE_MODE)))
        return result

    def overlay_dirs(self) -> list[PurePosixPath]:
        """Every directory the overlay files need, parents first."""
        dirs: set[PurePosixPath] = set()
        for item in self.overlay_files():
            dirs.update(p for p in item.path.parents if str(p) != "/")
        dirs.update(p for p in self.wheelhouse_path.parents if str(p) != "/")
        dirs.add(self.wheelhouse_path)
        return sorted(dirs, key=lambda p: (len(p.parts), str(p)))


def load_recipe(path: str | os.PathLike[str] = DEFAULT_RECIPE) -> Recipe:
    """Read and check a recipe file; raise :class:`RecipeError` naming the bad key."""
    file = Path(path)
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"{file}: cannot read the image recipe: {exc}") from None
    if doc.get("format") != RECIPE_FORMAT:
        raise RecipeError(f"{file}: format must be {RECIPE_FORMAT!r}")

    def strings(table: dict[str, object], key: str, where: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise RecipeError(f"{file}: {where}.{key}: expected a list of names")
        return tuple(value)

    units = doc.get("units", {})
    overlay = doc.get("overlay", {})
    modes: dict[str, int] = {}
    for node_path, text in overlay.get("modes", {}).items():
        try:
            mode = int(str(text), 8)
        except ValueError:
            raise RecipeError(f"{file}: overlay.modes.{node_path!r}: mode {text!r} is not "
                              "octal such as '0755'") from None
        if not 0 <= mode <= 0o7777 or not node_path.startswith("/"):
            raise RecipeError(f"{file}: overlay.modes.{node_path!r}: bad path or mode")
        modes[node_path] = mode
    overlay_dir = (file.parent / str(overlay.get("source", "overlay"))).resolve()
    if not overlay_dir.is_dir():
        raise RecipeError(f"{file}: overlay.source: {overlay_dir} is not a folder")
    bases = {name: dict(table) for name, table in doc.get("base", {}).items()}
    if sum(1 for b in bases.values() if b.get("default")) != 1:
        raise RecipeError(f"{file}: exactly one [base.*] must have default = true")
    debian = None
    if isinstance(table := doc.get("debian"), dict):
        arches = {a: table[a] for a in ("amd64", "arm64") if isinstance(table.get(a), dict)}
        debian = DebianRecipe(
            suite=str(table.get("suite", "bookworm")),
            mirror=str(table.get("mirror", "http://deb.debian.org/debian")).rstrip("/"),
            security_mirror=str(table.get("security_mirror",
                                          "http://deb.debian.org/debian-security")).rstrip("/"),
            system=strings(table, "system", "debian"),
            arch_packages={a: strings(t, "packages", f"debian.{a}") for a, t in arches.items()},
            components={a: strings(t, "components", f"debian.{a}") or ("main",)
                        for a, t in arches.items()})
    recipe = Recipe(
        path=file, packages=strings(doc.get("packages", {}), "required", "packages"),
        enable=strings(units, "enable", "units"), mask=strings(units, "mask", "units"),
        target=str(units.get("target", "multi-user.target")),
        unit_dir=PurePosixPath(str(units.get("unit_dir", "/usr/lib/systemd/system"))),
        overlay_dir=overlay_dir, modes=modes,
        wheelhouse_path=PurePosixPath(str(doc.get("wheelhouse", {}).get(
            "path", "/opt/meshhub/wheelhouse"))),
        bases=bases, debian=debian)
    shipped = {str(f.path) for f in recipe.overlay_files()}
    for unit in recipe.enable:
        if str(recipe.unit_dir / unit) not in shipped:
            raise RecipeError(f"{file}: units.enable: {unit} is not in the overlay's "
                              f"{recipe.unit_dir}")
    for node_path in modes:
        if node_path not in shipped:
            raise RecipeError(f"{file}: overlay.modes: {node_path} is not an overlay file")
    return recipe
