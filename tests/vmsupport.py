"""What every test that boots a virtual machine shares: the Debian base image and its cache.

A base image (``meshhub-provision image base --arch amd64``) takes minutes and
about 700 MB from Debian's mirror, so it is kept in a cache folder when one
exists: ``$MESHHUB_VM_CACHE``, else ``/var/cache/meshhub-vm`` (CI sets the
first, ``.ci/run``), keyed by the package list and the base builder's code.
Test processes running side by side (pytest-xdist workers, two checkouts on
one machine) build it once: the build holds a lock beside the image.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Where to look for a cache folder when $MESHHUB_VM_CACHE is not set.
DEFAULT_CACHE = "/var/cache/meshhub-vm"


def vm_cache_dir() -> Path | None:
    """The cache folder for base images, if one exists (never created here)."""
    for candidate in (os.environ.get("MESHHUB_VM_CACHE"), DEFAULT_CACHE):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def base_cache_key(arch: str = "amd64") -> str:
    """What makes one base differ from another: its packages and the builder's code."""
    from provisioning.image import base

    digest = hashlib.sha256()
    digest.update(json.dumps([arch, base.base_packages(arch)]).encode())
    digest.update(Path(base.__file__).read_bytes())
    return digest.hexdigest()[:16]


def base_image(folder: Path, arch: str = "amd64", lines: list[str] | None = None) -> Path:
    """The base image for ``arch`` in ``folder``, built there first if it is not there yet.

    Holds an exclusive lock on ``IMAGE.lock`` (one per image, so that building
    one base never holds up a process wanting another) while it checks and
    builds: a second process wanting the same image waits for the first one's
    instead of building its own. Build errors propagate
    (:class:`provisioning.image.base.BaseImageError`); ``lines`` collects the
    build's progress lines for the caller's message.
    """
    from provisioning.image.base import build_base

    path = base_path(folder, arch)
    with locked(path):
        if not path.exists():
            build_base(arch, path, progress=(lines if lines is not None else []).append)
    return path


def base_path(folder: Path, arch: str = "amd64") -> Path:
    """Where the base image for ``arch`` with today's package list is kept in ``folder``."""
    return folder / f"meshhub-base-{arch}-{base_cache_key(arch)}.img"


@contextlib.contextmanager
def locked(image: Path) -> Iterator[None]:
    """Hold the exclusive lock on ``IMAGE.lock`` (whoever builds or stores that base holds it)."""
    with open(image.with_name(image.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def base_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this test run keeps base images: the cache folder if there is one, else a
    folder that every pytest-xdist worker of this run shares (so one run builds one base
    even without a cache, e.g. ``make test`` on a fresh clone)."""
    cache = vm_cache_dir()
    if cache is not None:
        return cache
    run = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run = run.parent  # .../pytest-N/popen-gwK: the run's folder is shared by workers
    folder = run / "vm-base"
    folder.mkdir(exist_ok=True)
    return folder


__all__ = ["DEFAULT_CACHE", "base_cache_key", "base_folder", "base_image", "base_path", "locked",
           "vm_cache_dir"]
