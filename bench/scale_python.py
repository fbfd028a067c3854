"""The idle agents under another interpreter (``bench.scale --python PATH``).

A node runs Debian's ``python3.11`` (``/usr/bin/python3.11``: the node's venv points at
it, provisioning/image/venv.py), a non-PIE executable with libpython linked in. This
checkout's ``.venv`` may run another build, such as pyenv's with a shared
``libpython3.11.so``. Both write to their interpreter's own static data as they run
(about 1.2-1.3 MiB of each agent's private pages: the statically allocated objects and
3.11's deep-frozen modules in ``.data``, whose reference counts change), so the two
differ by less than that; how much is what this measures. ``--python`` runs the same
idle lab's agents under the interpreter given, from a venv of this project made for it
with the same dependency versions as the running one, and the idle part reports both.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

#: This checkout; the venvs are made under its (git-ignored) build/ folder.
CHECKOUT = Path(__file__).resolve().parents[1]
VENVS = CHECKOUT / "build" / "bench-venvs"


def describe(python: str) -> str:
    """A short label for interpreter ``python``: its version and whether its libpython is
    a shared library (``shared libpython``) or inside the executable (``static``)."""
    probe = ("import sys; maps = open('/proc/self/maps').read(); "
             "print(sys.version.split()[0], 'shared' if 'libpython' in maps else 'static')")
    version, linking = subprocess.run([python, "-c", probe], capture_output=True, text=True,
                                      check=True).stdout.split()
    return f"python {version} {linking} libpython"


def project_venv(python: str) -> Path:
    """The ``bin/python`` of a venv of this project for ``python``, made once and reused.

    The project is installed editable, as in ``make``'s ``.venv``, so both sets of agents
    run this checkout's code and differ only in the interpreter; every dependency is
    pinned to the version the running interpreter has (``pip freeze``). A changed set of
    versions makes a new venv (the folder's name holds their hash).
    """
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                            capture_output=True, text=True, check=True).stdout
    pins = "".join(line + "\n" for line in frozen.splitlines()
                   if "==" in line and not line.startswith("meshhub"))
    key = hashlib.sha256(f"{Path(python).resolve()}\n{pins}".encode()).hexdigest()[:12]
    venv = VENVS / key
    venv_python = venv / "bin" / "python"
    stamp = venv / ".installed-stamp"
    if stamp.exists():
        return venv_python
    print(f"making a venv of meshhub for {python} in {venv} (once)", flush=True)
    VENVS.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
    constraints = venv / "constraints.txt"
    constraints.write_text(pins, encoding="ascii")
    subprocess.run([str(venv_python), "-m", "pip", "install", "--quiet", "-c", str(constraints),
                    "-e", str(CHECKOUT)], check=True)
    stamp.touch()
    return venv_python


def run_idle_under(venv_python: Path, timings: str, label: str, argv: list[str]) -> None:
    """Run this benchmark's idle part, for ``timings`` only, under ``venv_python`` (a
    child process whose labs start that venv's ``meshhub``); its lines name ``label``."""
    # py-spy (thread names) need not be in that venv: the running one's does for both.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    subprocess.run([str(venv_python), "-m", "bench.scale", "--parts", "idle",
                    "--idle-timings", timings, "--idle-label", label, *argv],
                   cwd=CHECKOUT, check=True, env={**os.environ, "PATH": path})
