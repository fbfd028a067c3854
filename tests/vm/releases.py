"""Newer releases of this checkout for the VM's update tests, made and signed as a community does.

A release here is this checkout's own wheel with a higher version (the
``dist-info`` folder renamed, ``METADATA`` and ``RECORD`` rewritten, so pip
installs it exactly as a built one), optionally with files replaced (a
release whose portal cannot start), beside the same dependency wheels as the
image's wheelhouse. :func:`signed_release` then runs ``release make`` and
``release sign`` (:mod:`provisioning.release`) with the registry's admin key,
so the node verifies it against the trust anchors that ``customise`` put on it.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import zipfile
from pathlib import Path

from packaging.version import Version

from provisioning.image.wheelhouse import meshhub_version, wheel_version

#: Appended to ``portal/cli.py`` of a broken release: ``meshhub-portal`` exits at once,
#: so the portal never answers and the updater's health check fails.
BROKEN_PORTAL = '''

def program() -> None:  # replaced in this release (tests/vm): a portal that cannot start
    raise SystemExit("meshhub-portal {version}: broken on purpose (tests/vm, a release "
                     "failing its health check)")
'''


def newer_version(version: str, step: int = 1) -> str:
    """``version`` with its last release number raised by ``step`` (0.1.0 -> 0.1.1)."""
    release = list(Version(version).release)
    release[-1] += step
    return ".".join(map(str, release))


def rewrap_wheel(wheel: Path, out: Path, version: str,
                 replace: dict[str, bytes] | None = None) -> Path:
    """Write meshhub's ``wheel`` as version ``version`` into folder ``out``; return its path.

    ``replace`` maps paths inside the wheel to their new content. RECORD gets
    every file's hash and size again, as pip checks them.
    """
    old = wheel_version(wheel)
    assert old is not None, f"{wheel} is not meshhub's wheel"
    old_info, new_info = f"meshhub-{old}.dist-info/", f"meshhub-{version}.dist-info/"
    target = out / wheel.name.replace(f"-{old}-", f"-{version}-", 1)
    records: list[str] = []
    with zipfile.ZipFile(wheel) as source, \
            zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as made:
        for info in source.infolist():
            name = info.filename
            if name == old_info + "RECORD":
                continue
            data = (replace or {}).get(name, source.read(name))
            if name.startswith(old_info):
                name = new_info + name.removeprefix(old_info)
                if name == new_info + "METADATA":
                    data = data.replace(f"\nVersion: {old}\n".encode(),
                                        f"\nVersion: {version}\n".encode(), 1)
            made.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append(f"{name},sha256={digest.decode()},{len(data)}")
        records.append(f"{new_info}RECORD,,")
        made.writestr(new_info + "RECORD", "\n".join(records) + "\n")
    return target


def signed_release(wheelhouse: Path, folder: Path, version: str, admin_key: Path, *,
                   broken_portal: bool = False) -> Path:
    """A release folder of meshhub ``version`` (the wheelhouse's dependencies beside it),
    made and signed by ``provisioning.release``; its portal cannot start if
    ``broken_portal``. Rolled out to every node at once (``rollout_days`` 0)."""
    from provisioning.release import make_release, sign_release

    old = meshhub_version(wheelhouse)
    wheels = folder.parent / f".wheels-{folder.name}"
    wheels.mkdir(parents=True)
    for item in wheelhouse.glob("*.whl"):
        if wheel_version(item) is None:
            shutil.copyfile(item, wheels / item.name)
    replace = None
    if broken_portal:
        with zipfile.ZipFile(next(wheelhouse.glob(f"meshhub-{old}-*.whl"))) as source:
            cli = source.read("portal/cli.py")
        replace = {"portal/cli.py": cli + BROKEN_PORTAL.format(version=version).encode()}
    rewrap_wheel(next(wheelhouse.glob(f"meshhub-{old}-*.whl")), wheels, version, replace)
    make_release(folder, version=version, wheelhouse=wheels, rollout_days=0,
                 date="2020-01-01")
    shutil.rmtree(wheels)
    sign_release(folder, admin_key)
    return folder
