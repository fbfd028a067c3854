"""A node's virtual environment, made on the builder for the node's platform.

First boot used to make ``/opt/meshhub/venvs/<version>`` on the node
(``python3 -m venv`` + ``pip install`` from the image's wheelhouse + byte-
compiling): 8-10 minutes in a virtual machine under TCG, and minutes on a Pi
Zero 2 W. Nothing in it needs the node's own interpreter, so the build makes
it instead, for either architecture, without running the node's Python:

1. ``pip install --target .../lib/python3.11/site-packages --platform TAG
   --python-version 3.11 --implementation cp --only-binary=:all: --no-index``
   from the wheelhouse (pip chooses the node's wheels, as ``pip download``
   did for the wheelhouse);
2. what ``python3 -m venv`` would write on Debian 12: ``pyvenv.cfg`` (home
   ``/usr/bin``), ``bin/python`` -> ``python3`` -> ``/usr/bin/python3``,
   ``bin/python3.11`` -> ``python3``, ``lib64`` -> ``lib``;
3. the console scripts (``meshhub``, ``meshhub-portal``, ...) pip wrote with
   the builder's interpreter in their ``#!`` line, pointed at the venv's
   ``bin/python`` on the node;
4. byte-compiled at levels 0 (the agent) and 2 (the portal's ``python
   -OO``) by a Python 3.11 on the builder, with ``unchecked-hash``
   invalidation: the bytecode does not depend on file times (which the copy
   into the image does not keep), and the venv is never edited afterwards
   (an update makes a new one); source paths as they are on the node;
5. the ``.meshhub-complete`` mark last, as the updater and first boot write it.

The venv has no pip of its own: the updater makes each new version's venv
with the node's ``python3 -m venv`` (node/update/updater.py), and first boot
still installs from the wheelhouse when an image carries no venv.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from node.runtime import PORTAL_OPTIMIZE_LEVEL, SKIP_IN_PACKAGES
from provisioning.image.wheelhouse import NODE_PYTHON, _pip

#: Debian 12's interpreter, which the venv's ``bin/python`` points at.
NODE_INTERPRETER = "/usr/bin/python3"
#: Written last: a venv without it is incomplete (node/update/updater.py's COMPLETE_MARK).
COMPLETE_MARK = ".meshhub-complete"
VENVS = PurePosixPath("/opt/meshhub/venvs")


@dataclass(frozen=True)
class NodeVenv:
    """A venv made on the builder: ``folder`` here, ``node_path`` on the node."""

    folder: Path
    node_path: PurePosixPath
    version: str
    compiled: bool  #: byte-compiled here (a Python 3.11 was found on the builder)


def compiler_python() -> str | None:
    """A Python 3.11 on the builder to byte-compile with (bytecode is per minor version)."""
    if sys.version_info[:2] == tuple(int(p) for p in NODE_PYTHON.split(".")):
        return sys.executable
    return shutil.which(f"python{NODE_PYTHON}")


def build_node_venv(wheels: Path, version: str, out: Path, *, platforms: tuple[str, ...],
                    node_path: PurePosixPath | None = None, also: Sequence[str] = (),
                    invalidation: str = "unchecked-hash") -> NodeVenv:
    """Make the venv for meshhub ``version`` from ``wheels`` in ``out``; see the module
    docstring. ``out`` must not exist. Returns what was made; raises
    :class:`~provisioning.image.wheelhouse.WheelhouseError` when pip cannot install it.

    Without a Python 3.11 on the builder the venv is made but not byte-compiled
    and carries no complete mark: first boot then installs from the wheelhouse
    as before (None of it would be wrong, only slower).

    ``also``: more requirements to install beside meshhub (the radio tests' virtual
    machine adds its test runner). ``invalidation``: compileall's mode; ``timestamp``
    for a venv whose file times are kept (an ext4 image made with ``mkfs.ext4 -d``),
    where ``lab up``'s own compileall check then finds everything up to date.
    """
    node_path = node_path or VENVS / version
    site = out / "lib" / f"python{NODE_PYTHON}" / "site-packages"
    platform_args = [arg for p in platforms for arg in ("--platform", p)]
    _pip(["install", "--quiet", "--no-index", "--find-links", str(wheels),
          "--only-binary=:all:", "--python-version", NODE_PYTHON, "--implementation", "cp",
          *platform_args, "--target", str(site), "--no-compile", "--no-warn-script-location",
          f"meshhub=={version}", *also],
         f"installing meshhub {version} for the node ({platforms[0]}) from {wheels}")
    _move_scripts(site / "bin", out / "bin", node_path)
    _venv_files(out, node_path)
    python = compiler_python()
    if python is not None:
        _byte_compile(python, out, node_path, invalidation)
        (out / COMPLETE_MARK).write_text(version + "\n", encoding="ascii")
    return NodeVenv(out, node_path, version, python is not None)


_SHEBANG = re.compile(rb"^#!.*python[0-9.]*\s*$")


def _move_scripts(source: Path, bin_dir: Path, node_path: PurePosixPath) -> None:
    """pip --target leaves console scripts in site-packages/bin with the builder's
    interpreter; move them to the venv's bin/ naming the node's venv Python."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    if not source.is_dir():
        return
    for script in sorted(source.iterdir()):
        data = script.read_bytes()
        first, sep, rest = data.partition(b"\n")
        if _SHEBANG.match(first):
            data = f"#!{node_path}/bin/python".encode() + sep + rest
        target = bin_dir / script.name
        target.write_bytes(data)
        target.chmod(0o755)
    shutil.rmtree(source)


def _venv_files(out: Path, node_path: PurePosixPath) -> None:
    """What ``python3 -m venv`` writes on Debian 12 besides site-packages."""
    (out / "pyvenv.cfg").write_text(
        f"home = {PurePosixPath(NODE_INTERPRETER).parent}\n"
        "include-system-site-packages = false\n"
        f"version = {NODE_PYTHON}\n"
        f"executable = {PurePosixPath(NODE_INTERPRETER).parent}/python{NODE_PYTHON}\n"
        f"command = {NODE_INTERPRETER} -m venv {node_path}\n", encoding="ascii")
    links = {"bin/python": "python3", "bin/python3": NODE_INTERPRETER,
             f"bin/python{NODE_PYTHON}": "python3", "lib64": "lib"}
    for rel, target in links.items():
        path = out / rel
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(target)


def _byte_compile(python: str, out: Path, node_path: PurePosixPath,
                  invalidation: str = "unchecked-hash") -> None:
    """Levels 0 and 2, unchecked-hash, source paths as on the node (compileall -s/-p)."""
    argv = [python, "-m", "compileall", "-q", "-j", "0", "-o", "0", "-o",
            str(PORTAL_OPTIMIZE_LEVEL), "--invalidation-mode", invalidation,
            "-x", SKIP_IN_PACKAGES, "-s", str(out), "-p", str(node_path), str(out / "lib")]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        from provisioning.image.wheelhouse import WheelhouseError

        raise WheelhouseError(f"byte-compiling the node's venv failed: "
                              f"{(result.stdout + result.stderr).strip()[-800:]}")


__all__ = ["COMPLETE_MARK", "NodeVenv", "build_node_venv", "compiler_python"]
