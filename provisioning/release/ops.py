"""Make, sign and verify a release folder (``manifest.json`` + the wheels it lists)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

from node.atomic import atomic_write
from node.identity import load_identity
from node.trust.registry import load_anchors, signers_of
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
from provisioning.image.wheelhouse import build_wheelhouse, meshhub_version, project_version


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
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ReleaseError(f"{target}: not empty; give a new folder for the release")
    project = project or Path(__file__).resolve().parents[2]
    if version is not None:  # before the (slow) build: say at once what to change
        planned = (meshhub_version(Path(wheelhouse)) if wheelhouse is not None
                   else project_version(project))
        _same_version(version, planned, "the meshhub wheel is" if wheelhouse is not None
                      else "this checkout's pyproject.toml says")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Filled in a hidden folder beside OUT and renamed: a failed run leaves no half release.
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial",
                                 dir=target.parent))
    try:
        manifest = _fill_release(work, version=version, channel=channel,
                                 rollout_days=rollout_days, wheelhouse=wheelhouse, date=date,
                                 project=project, name=target)
        if target.exists():
            target.rmdir()  # empty (checked above)
        os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _same_version(asked: str, found: str | None, where: str) -> None:
    if found is not None and asked != found:
        raise ReleaseError(f"--version {asked} but {where} {found}; set "
                           f'version = "{asked}" in pyproject.toml and build again (or leave '
                           "out --version to release the version it has)")


def _fill_release(folder: Path, *, version: str | None, channel: str, rollout_days: int,
                  wheelhouse: str | os.PathLike[str] | None, date: str | None,
                  project: Path, name: Path) -> Manifest:
    if wheelhouse is None:
        build_wheelhouse(project, folder)
    else:
        for item in sorted(Path(wheelhouse).iterdir()):
            if item.is_file() and item.suffix == ".whl":
                shutil.copyfile(item, folder / item.name)
    wheel_version = meshhub_version(folder)
    if version is not None:
        _same_version(version, wheel_version, "the meshhub wheel is")
    files = []
    for item in sorted(folder.glob("*.whl")):
        digest, size = file_digest(item)
        files.append({"path": item.name, "sha256": digest, "size": size})
    release = {"version": wheel_version, "channel": channel, "rollout_days": rollout_days,
               "date": date or dt.datetime.now(dt.UTC).date().isoformat(), "files": files}
    try:
        check_release(release)
    except ValueError as exc:
        raise ReleaseError(f"{name}: {exc}") from None
    manifest = Manifest(release, ())
    atomic_write(folder / MANIFEST_NAME, manifest.dumps())
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
