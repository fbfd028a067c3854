"""A new version's venv starts as a copy of the running one, so pip installs only what changed.

A pip install of a whole release (some 40 wheels, C extensions among them, then
byte-compiling all of it) takes 8-10 minutes in a virtual machine under TCG and
minutes on a Pi Zero 2 W, while a release usually changes meshhub's own wheel
and little else. So the updater (:func:`node.update.updater.pip_installer`):

1. copies the running venv (``current``, only if it is whole) to the new
   version's folder, without its complete mark; file times are kept, so the
   copied bytecode stays valid;
2. runs the node's ``python3 -m venv --without-pip`` over the copy: it writes
   ``pyvenv.cfg`` and the activate scripts for the new folder; the console
   scripts that named the old venv's Python are pointed at the new one
   (:func:`point_scripts_at`);
3. ``pip install --upgrade --upgrade-strategy eager --no-index --find-links
   <release>``, pip run from Debian's own wheel (python3-pip-whl, which
   ``python3 -m venv`` installs pip from) by the new venv's Python: it
   installs meshhub's new wheel and every dependency whose version in the
   release differs from the one installed; one already at the release's
   version is left as it is;
4. only the distributions pip (re)installed are byte-compiled for the portal
   (:func:`installed_sources`).

The running venv is only read, so a failed install or a power cut leaves it as
it was; the updater removes the half-made copy. A dependency the new release no
longer needs stays in the new venv, unused (the next image starts clean).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

#: The mark the updater writes in a whole venv (node/update/updater.py); never copied.
COMPLETE_MARK = ".meshhub-complete"


def running_venv(current: Path) -> Path | None:
    """The venv ``current`` points at, if it is whole (has its complete mark); else None."""
    try:
        venv = current.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return venv if (venv / COMPLETE_MARK).is_file() else None


def copy_venv(source: Path, target: Path) -> None:
    """Copy the venv ``source`` to ``target`` (which must not exist), symlinks as links and
    file times kept, without the complete mark: the copy is not whole until installed."""

    def skip(folder: str, names: list[str]) -> list[str]:
        return [COMPLETE_MARK] if Path(folder) == source else []

    shutil.copytree(source, target, symlinks=True, ignore=skip)


def point_scripts_at(bin_dir: Path, old: Path, new: Path) -> list[str]:
    """Rewrite the ``#!`` line of each script in ``bin_dir`` that names ``old``'s Python
    to name ``new``'s; returns the scripts changed. Binaries and links are left alone."""
    old_prefix, new_prefix = f"#!{old}/".encode(), f"#!{new}/".encode()
    changed = []
    for script in sorted(bin_dir.iterdir()) if bin_dir.is_dir() else ():
        if script.is_symlink() or not script.is_file():
            continue
        with script.open("rb") as handle:
            if handle.read(len(old_prefix)) != old_prefix:
                continue
        data = script.read_bytes()
        mode = script.stat().st_mode
        tmp = script.with_name(f".{script.name}.new")
        tmp.write_bytes(new_prefix + data[len(old_prefix):])
        tmp.chmod(mode)
        tmp.replace(script)
        changed.append(script.name)
    return changed


def distributions(site_packages: Path) -> set[str]:
    """The ``*.dist-info`` folder names in ``site_packages`` (name and version each)."""
    return {p.name for p in site_packages.glob("*.dist-info")} if site_packages.is_dir() \
        else set()


def installed_sources(site_packages: Path, dist_infos: set[str]) -> list[Path]:
    """The ``.py`` files the distributions ``dist_infos`` installed in ``site_packages``,
    from their RECORD (what pip wrote), for byte-compiling those alone."""
    sources = []
    for name in sorted(dist_infos):
        record = site_packages / name / "RECORD"
        if not record.is_file():
            continue
        with record.open(newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if row and row[0].endswith(".py") and not row[0].startswith(("/", "..")):
                    path = site_packages / row[0]
                    if path.is_file():
                        sources.append(path)
    return sources


__all__ = ["COMPLETE_MARK", "copy_venv", "distributions", "installed_sources",
           "point_scripts_at", "running_venv"]
