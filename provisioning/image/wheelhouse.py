"""The wheelhouse: meshhub's wheel and every dependency's, so a node installs offline.

A node is arm64 running Debian 12's Python 3.11, the laptop usually is not:
dependencies are fetched with ``pip download --platform ... --only-binary``
for the node's platform (pure-Python wheels fit any). The wheelhouse is also
what a release ships (``provisioning.release``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from provisioning.errors import ProvisionError

#: Debian 12 bookworm on a Raspberry Pi (64-bit).
NODE_PYTHON = "3.11"
NODE_PLATFORMS = ("manylinux_2_36_aarch64", "manylinux_2_28_aarch64", "manylinux2014_aarch64",
                  "linux_aarch64")
#: The pip platform tags of each node architecture (Debian 12: glibc 2.36).
PLATFORMS = {
    "arm64": NODE_PLATFORMS,
    "amd64": ("manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
              "manylinux2014_x86_64", "linux_x86_64"),
}
_WHEEL = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+"
                    r"\.whl$")


class WheelhouseError(ProvisionError, OSError):
    """The wheelhouse could not be built or does not hold meshhub."""


def wheel_version(path: Path, project: str = "meshhub") -> str | None:
    """The version in a wheel's file name if it is ``project``'s wheel, else None."""
    match = _WHEEL.match(path.name)
    if not match or match.group("name").lower().replace("-", "_") != project:
        return None
    return match.group("version")


def meshhub_version(wheelhouse: Path) -> str:
    """The version of the one meshhub wheel in ``wheelhouse``; raise if none or several."""
    versions = sorted({v for p in wheelhouse.glob("*.whl") if (v := wheel_version(p))})
    if len(versions) != 1:
        found = ", ".join(versions) or "none"
        raise WheelhouseError(f"{wheelhouse}: expected exactly one meshhub wheel, found {found}; "
                              "build it with 'pip wheel . --no-deps -w DIR' or let the build "
                              "make the wheelhouse")
    return versions[0]


def build_meshhub_wheel(project: Path, out: Path) -> Path:
    """Build meshhub's own wheel from the checkout ``project`` into ``out``; return its path.

    With build isolation, so pip installs what pyproject.toml's
    ``[build-system]`` requires (setuptools, wheel) into a throwaway
    environment: the laptop's venv may lack ``wheel`` or have an old
    setuptools ("invalid command 'bdist_wheel'").
    """
    out.mkdir(parents=True, exist_ok=True)
    _pip(["wheel", str(project), "--no-deps", "-w", str(out)], "building meshhub's wheel")
    version = meshhub_version(out)
    return next(p for p in out.glob("*.whl") if wheel_version(p) == version)


def project_version(project: Path) -> str | None:
    """The version pyproject.toml of the checkout ``project`` declares (None if not static)."""
    import tomllib

    try:
        with open(project / "pyproject.toml", "rb") as file:
            value = tomllib.load(file).get("project", {}).get("version")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return value if isinstance(value, str) else None


def build_wheelhouse(project: Path, out: Path, *, platforms: tuple[str, ...] = NODE_PLATFORMS,
                     python_version: str = NODE_PYTHON) -> str:
    """Build meshhub's wheel from ``project`` and fetch its dependencies into ``out``.

    Needs the internet (or a pip cache holding the wheels). Returns the version.
    """
    wheel = build_meshhub_wheel(project, out)
    platform_args = [arg for p in platforms for arg in ("--platform", p)]
    _pip(["download", "--only-binary=:all:", "--python-version", python_version,
          "--implementation", "cp", *platform_args, "-d", str(out), str(wheel)],
         f"downloading the dependencies for the node ({platforms[0]}, Python {python_version})")
    return wheel_version(wheel) or meshhub_version(out)


#: pip's own framing around a failed build, which says nothing about the cause.
_PIP_NOISE = ("error: subprocess-exited-with-error", "error: metadata-generation-failed",
              "error: failed-wheel-build-for-install", "hint: See above for details.")


def _pip(args: list[str], what: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise WheelhouseError(f"{what} failed:\n{explain_pip(result.stdout + result.stderr)}")


def explain_pip(output: str, keep: int = 12) -> str:
    """The lines of pip's output that say why it failed.

    pip prints the build backend's own error (e.g. "invalid command
    'bdist_wheel'") inside a box, then "hint: See above for details": the
    error lines are picked out first, the last lines follow for context.
    """
    lines = [line.strip(" │╰─>×║") for line in output.splitlines()]
    lines = [line for line in lines if line and line not in _PIP_NOISE]
    causes = [line for line in lines if "error" in line.lower()]
    tail = lines[-4:]
    picked = list(dict.fromkeys(causes[-keep:] + tail))
    return "\n".join(picked) or "(pip printed nothing)"
