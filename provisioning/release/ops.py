"""Make, sign and verify a release folder (``manifest.json`` + the wheels it lists)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

from node.atomic import atomic_write
from node.identity import load_identity
from node.registry import load_anchors, signers_of
from node.update.manifest import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    Manifest,
    ManifestRejected,
    check_file,
    check_release,
    file_digest,
    parse_manifest,
    verify_manifest,
)
from provisioning.errors import ProvisionError
from provisioning.image.wheelhouse import build_wheelhouse, meshhub_version


class ReleaseError(ProvisionError, ValueError):
    """A release could not be made, signed or verified (the message says why)."""


def make_release(out: str | os.PathLike[str], *, version: str | None = None,
                 channel: str = "stable", rollout_days: int = 7,
                 wheelhouse: str | os.PathLike[str] | None = None,
                 date: str | None = None, project: Path | None = None) -> Manifest:
    """Write release folder ``out``: the wheelhouse's files and an unsigned ``manifest.json``.

    ``wheelhouse`` defaults to one built from ``project`` (needs the internet or
    a pip cache). ``version`` must equal the meshhub wheel's version when given.
    """
    target = Path(out)
    if target.exists() and any(target.iterdir()):
        raise ReleaseError(f"{target}: not empty; give a new folder for the release")
    target.mkdir(parents=True, exist_ok=True)
    if wheelhouse is None:
        build_wheelhouse(project or Path(__file__).resolve().parents[2], target)
    else:
        for item in sorted(Path(wheelhouse).iterdir()):
            if item.is_file() and item.suffix == ".whl":
                shutil.copyfile(item, target / item.name)
    wheel_version = meshhub_version(target)
    if version is not None and version != wheel_version:
        raise ReleaseError(f"--version {version} but the meshhub wheel is {wheel_version}; "
                           "set the version in pyproject.toml and build again")
    files = []
    for item in sorted(target.glob("*.whl")):
        digest, size = file_digest(item)
        files.append({"path": item.name, "sha256": digest, "size": size})
    release = {"version": wheel_version, "channel": channel, "rollout_days": rollout_days,
               "date": date or dt.datetime.now(dt.UTC).date().isoformat(), "files": files}
    try:
        check_release(release)
    except ValueError as exc:
        raise ReleaseError(f"{target}: {exc}") from None
    manifest = Manifest(release, ())
    atomic_write(target / MANIFEST_NAME, manifest.dumps())
    return manifest


def read_release(folder: str | os.PathLike[str]) -> Manifest:
    """The parsed manifest of release folder ``folder`` (signatures not verified)."""
    path = Path(folder) / MANIFEST_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ReleaseError(f"{path}: not found; is {folder} a release folder "
                           "('release make')?") from None
    return parse_manifest(data, str(path))


def sign_release(folder: str | os.PathLike[str], key_file: str | os.PathLike[str],
                 anchors: str | os.PathLike[str] | None = None
                 ) -> tuple[Manifest, int, int | None]:
    """Add the admin signature of ``key_file`` to the folder's manifest.

    Checks the files against the manifest first (an admin signs what is there).
    Returns the manifest, the number of valid admin signatures and the threshold
    (both counted against ``anchors`` when given, else the count of signatures).
    """
    base = Path(folder)
    manifest = read_release(base)
    for item in manifest.files:
        check_file(base / item.path, item, str(base))
    identity = load_identity(key_file)
    signed = manifest.with_signature(identity.public_key, identity.sign(manifest.message()))
    atomic_write(base / MANIFEST_NAME, signed.dumps())
    if anchors is None:
        return signed, len(signed.signatures), None
    trusted = load_anchors(anchors)
    good, _ = signers_of(signed.message(), signed.signatures, trusted)
    return signed, len(good), trusted.threshold


def verify_release(folder: str | os.PathLike[str], anchors: str | os.PathLike[str],
                   running: str | None = None) -> Manifest:
    """Check a release folder exactly as a node would; raise ManifestRejected if refused."""
    base = Path(folder)
    manifest = read_release(base)
    verify_manifest(manifest, load_anchors(anchors), str(base / MANIFEST_NAME), running)
    for item in manifest.files:
        check_file(base / item.path, item, str(base))
    listed = {f.path for f in manifest.files} | {MANIFEST_NAME}
    extra = sorted(p.name for p in base.iterdir() if p.name not in listed)
    if extra:
        raise ManifestRejected(str(base), f"files not in the manifest: {', '.join(extra)}")
    return manifest


__all__ = ["MANIFEST_FORMAT", "ReleaseError", "make_release", "read_release", "sign_release",
           "verify_release"]
