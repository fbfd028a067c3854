"""Release manifests: the one definition of their format, parsing and verification.

A release is a folder: ``manifest.json`` plus the files it lists (meshhub's
wheel and its dependencies' wheels). ``manifest.json``::

    {"format": "meshhub-release-v1",
     "release": {"version": "1.2.0", "date": "2026-11-26", "channel": "stable",
                 "rollout_days": 7,
                 "files": [{"path": "meshhub-1.2.0-py3-none-any.whl",
                            "sha256": "<64 hex>", "size": 123456}, ...]},
     "signatures": [{"public_key": "<64 hex>", "signature": "<128 hex>"}, ...]}

Each signature is Ed25519 over :data:`SIGNING_CONTEXT` + the canonical JSON of
``release`` (as for registry snapshots, :mod:`node.trust.registry`, whose n-of-m
check this reuses). A node accepts a manifest only with at least
``threshold`` valid signatures of the admins it trusts now (the registry's
trust anchors: an admin rotated out no longer counts), only for a version
newer than the one running (PEP 440), and only files whose SHA-256 matches.
Provisioning imports this module to make and sign releases; never the other way.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.version import InvalidVersion, Version

from node.errors import NodeError
from node.frozen import frozen
from node.trust.registry import (
    AdminSet,
    Signature,
    canonical_bytes,
    parse_signatures,
    signers_of,
)

MANIFEST_FORMAT = "meshhub-release-v1"
MANIFEST_NAME = "manifest.json"
SIGNING_CONTEXT = b"meshhub release manifest v1\n"
#: A manifest lists a few dozen wheels; anything this big is not one.
MAX_MANIFEST_BYTES = 256 * 1024
MAX_FILES = 500
#: The largest single file a release may carry (a wheel), and all files together.
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_RELEASE_BYTES = 512 * 1024 * 1024
MAX_ROLLOUT_DAYS = 365
CHANNEL = re.compile(r"[a-z][a-z0-9-]{0,31}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
_RELEASE_KEYS = {"version", "date", "channel", "rollout_days", "files"}
_FILE_KEYS = {"path", "sha256", "size"}


class ManifestRejected(NodeError, ValueError):
    """A release manifest (or one of its files) is malformed, untrusted or not wanted.

    ``source`` names the file or mirror; the message says why.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: release refused: {reason}")


@frozen
class ReleaseFile:
    """One file of a release: a plain name inside the release folder, its hash and size."""

    path: str
    sha256: str
    size: int


@frozen
class Manifest:
    """A structurally valid manifest with its signatures (not yet verified)."""

    release: dict[str, Any]
    signatures: tuple[Signature, ...]

    @property
    def version(self) -> Version:
        """The release's version (PEP 440)."""
        return Version(self.release["version"])

    @property
    def date(self) -> str:
        """The release date, ``YYYY-MM-DD`` (UTC): the start of its rollout."""
        return str(self.release["date"])

    @property
    def channel(self) -> str:
        """The release channel, e.g. ``stable``."""
        return str(self.release["channel"])

    @property
    def rollout_days(self) -> int:
        """Days over which the share of nodes updating rises from 0 to all."""
        return int(self.release["rollout_days"])

    @property
    def files(self) -> tuple[ReleaseFile, ...]:
        """The release's files."""
        return tuple(ReleaseFile(f["path"], f["sha256"], f["size"]) for f in self.release["files"])

    def message(self) -> bytes:
        """The exact bytes an admin signs."""
        return signing_message(self.release)

    def with_signature(self, public_key: str, signature: str) -> Manifest:
        """A copy with one more signature (replacing that key's earlier one)."""
        kept = tuple(s for s in self.signatures if s.public_key != public_key)
        return Manifest(self.release, (*kept, Signature(public_key, signature)))

    def dumps(self) -> bytes:
        """The manifest file as bytes (stable, readable JSON)."""
        doc = {"format": MANIFEST_FORMAT, "release": self.release,
               "signatures": [{"public_key": s.public_key, "signature": s.signature}
                              for s in self.signatures]}
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def signing_message(release: Mapping[str, Any]) -> bytes:
    """The bytes signed for ``release``: a fixed context, then its canonical JSON."""
    return SIGNING_CONTEXT + canonical_bytes(dict(release))


def parse_manifest(data: bytes, source: str = "<manifest>") -> Manifest:
    """Parse and strictly check a manifest (signatures not verified); raise ManifestRejected."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestRejected(source, f"manifest is {len(data)} bytes, more than the "
                                       f"{MAX_MANIFEST_BYTES} a release manifest may have")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ManifestRejected(source, f"not a JSON file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise ManifestRejected(source, f"not a release manifest (format must be "
                                       f"{MANIFEST_FORMAT!r})")
    extra = set(doc) - {"format", "release", "signatures"}
    if extra:
        raise ManifestRejected(source, f"unexpected top-level keys {sorted(extra)}")
    try:
        check_release(doc.get("release"))
        signatures = parse_signatures(doc.get("signatures"))
    except ValueError as exc:
        raise ManifestRejected(source, str(exc)) from None
    return Manifest(doc["release"], signatures)


def check_release(release: Any) -> None:
    """Raise ValueError naming the first problem in a ``release`` object."""
    if not isinstance(release, dict):
        raise ValueError("release: expected an object")
    if set(release) != _RELEASE_KEYS:
        missing, extra = _RELEASE_KEYS - set(release), set(release) - _RELEASE_KEYS
        raise ValueError(f"release: keys must be {sorted(_RELEASE_KEYS)} "
                         f"(missing {sorted(missing)}, unexpected {sorted(extra)})")
    version = release["version"]
    try:
        if not isinstance(version, str) or str(Version(version)) != version:
            raise InvalidVersion(version)
    except InvalidVersion:
        raise ValueError(f"release.version: {version!r} is not a normalised PEP 440 "
                         "version such as '1.2.0'") from None
    if not isinstance(release["date"], str) or not _DATE.fullmatch(release["date"]):
        raise ValueError(f"release.date: expected YYYY-MM-DD, found {release['date']!r}")
    if not isinstance(release["channel"], str) or not CHANNEL.fullmatch(release["channel"]):
        raise ValueError(f"release.channel: {release['channel']!r} is not a channel name")
    days = release["rollout_days"]
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_ROLLOUT_DAYS:
        raise ValueError(f"release.rollout_days: expected 0 to {MAX_ROLLOUT_DAYS}, found {days!r}")
    files = release["files"]
    if not isinstance(files, list) or not files or len(files) > MAX_FILES:
        raise ValueError(f"release.files: expected a list of 1 to {MAX_FILES} files")
    seen: set[str] = set()
    total = 0
    for index, item in enumerate(files):
        where = f"release.files[{index}]"
        if not isinstance(item, dict) or set(item) != _FILE_KEYS:
            raise ValueError(f"{where}: expected an object with path, sha256 and size")
        path, digest, size = item["path"], item["sha256"], item["size"]
        if not isinstance(path, str) or not is_plain_name(path):
            raise ValueError(f"{where}.path: {path!r} is not a plain file name inside the "
                             "release (no folders, no '..', not absolute)")
        if path in seen or path == MANIFEST_NAME:
            raise ValueError(f"{where}.path: {path!r} is listed twice")
        seen.add(path)
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise ValueError(f"{where}.sha256: must be 64 lower-case hex digits")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_FILE_BYTES:
            raise ValueError(f"{where}.size: expected 0 to {MAX_FILE_BYTES} bytes, found {size!r}")
        total += size
    if total > MAX_RELEASE_BYTES:
        raise ValueError(f"release.files: {total} bytes in all, more than {MAX_RELEASE_BYTES}")


def is_plain_name(path: str) -> bool:
    """True for a file name with no folder part, not ``..``, not absolute, not hidden."""
    pure = PurePosixPath(path)
    return (_FILE_NAME.fullmatch(path) is not None and len(pure.parts) == 1
            and path not in {".", ".."} and "\\" not in path)


def verify_manifest(manifest: Manifest, trusted: AdminSet, source: str = "<manifest>",
                    running: str | Version | None = None) -> Manifest:
    """Return ``manifest`` if a node trusting ``trusted`` and running ``running`` may install it.

    Raises :class:`ManifestRejected` for a version not newer than ``running`` or
    fewer than ``trusted.threshold`` valid signatures of trusted admins.
    """
    if running is not None and manifest.version <= Version(str(running)):
        raise ManifestRejected(source, f"version {manifest.version} is not newer than the "
                                       f"running version {running}")
    good, problems = signers_of(manifest.message(), manifest.signatures, trusted)
    if len(good) < trusted.threshold:
        detail = ("; " + "; ".join(problems)) if problems else ""
        untrusted = sum(1 for s in manifest.signatures if s.public_key not in trusted.keys)
        note = (f"; {untrusted} signature(s) by keys that are not (or no longer) admins"
                if untrusted else "")
        raise ManifestRejected(source, f"only {len(good)} valid signature(s) of trusted admins, "
                                       f"{trusted.threshold} needed{note}{detail}")
    return manifest


def file_digest(path: str | Path, limit: int | None = None) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in chunks; stops past ``limit`` bytes."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                break
    return digest.hexdigest(), size


def check_file(path: str | Path, expected: ReleaseFile, source: str = "<release>") -> None:
    """Raise ManifestRejected unless the file at ``path`` has the expected size and SHA-256."""
    try:
        digest, size = file_digest(path, expected.size)
    except FileNotFoundError:
        raise ManifestRejected(source, f"{expected.path} is missing") from None
    if size != expected.size or digest != expected.sha256:
        raise ManifestRejected(source, f"{expected.path}: SHA-256 {digest[:16]}... / {size} "
                                       f"bytes, the manifest says {expected.sha256[:16]}... / "
                                       f"{expected.size} bytes (tampered or damaged)")
