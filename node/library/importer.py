"""Adding files from the node's own disk to the library: one big file, or a whole folder.

Used by ``meshhub library add`` and ``meshhub library import``. A file goes
through the same :class:`node.hub.Hub` checks as an upload (type decided by
content, permission, field limits, a damaged ZIM refused), but it is never
read into memory and, for the 90 GB Wikipedia archive copied onto a USB disk,
never copied either when it can be helped: the file is hashed in 1 MiB chunks,
then **hard-linked** into the BlobStore when both are on one filesystem (the
link shares the file's blocks; its mode becomes read-only so that an edit in
place cannot silently change content that is addressed by hash), and
streamed into it otherwise.

Each file ends as *added*, *skipped* (its content is already in the library:
duplicates are found by SHA-256, whatever their names) or *refused* (with the
reason a person can act on: an unknown type, a damaged archive, the library's
disk quota).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from node.atomic import fsync_dir
from node.blobs import CHUNK, BlobStore, detect_type
from node.errors import NodeError, PermissionDenied, ValidationError
from node.frozen import frozen
from node.library.metadata import read_metadata

if TYPE_CHECKING:
    from node.hub import Hub
    from node.store.models import LibraryItem

__all__ = ["ImportResult", "ImportSummary", "Importer", "library_usage"]

Status = Literal["added", "skipped", "refused"]


@frozen
class ImportResult:
    """What happened to one file."""

    path: Path
    status: Status
    reason: str = ""  #: why it was skipped or refused
    item: LibraryItem | None = None  #: the new (added) or existing (skipped) item


@dataclass
class ImportSummary:
    """Every file's result, in the order they were seen."""

    results: list[ImportResult] = field(default_factory=list)

    def of(self, status: Status) -> list[ImportResult]:
        """The results with this status."""
        return [r for r in self.results if r.status == status]

    @property
    def counts(self) -> dict[str, int]:
        """How many were added, skipped and refused."""
        statuses: tuple[Status, ...] = ("added", "skipped", "refused")
        return {s: len(self.of(s)) for s in statuses}


def library_usage(blobs: BlobStore) -> int:
    """Bytes the library's files take now (each stored file counted once)."""
    return blobs.usage()


def title_from_name(path: Path) -> str:
    """A readable title from a file name: 'water_guide-2024.pdf' -> 'water guide 2024'."""
    return " ".join(re.sub(r"[_\-.]+", " ", path.stem).split())[:120] or path.name


def iter_files(directory: Path) -> Iterator[Path]:
    """Regular files under ``directory``, sorted, hidden ones (and hidden folders) left out."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


class Importer:
    """Adds files to the library as ``actor``, within the hub's library quota."""

    def __init__(self, hub: Hub, actor: str, *, verify: bool = True, link: bool = True) -> None:
        self.hub = hub
        self.actor = actor
        self.verify = verify
        self.link = link
        self._used: int | None = None

    @property
    def used_bytes(self) -> int:
        """The library's disk use (measured once, then kept up to date by this importer)."""
        if self._used is None:
            self._used = library_usage(self.hub.blobs)
        return self._used

    def add(self, path: str | os.PathLike[str], *, title: str = "", collection: str = "",
            progress: Callable[[int], None] | None = None) -> ImportResult:
        """Add one file; ``progress(n)`` is told of every ``n`` bytes hashed.

        ``PermissionDenied`` (the actor may not add to the library) is raised,
        not reported: it would refuse every file alike.
        """
        path = Path(path)
        try:
            if not path.is_file():
                return ImportResult(path, "refused", "not a regular file")
            media_type, _mime, _ext = detect_type(path)
            sha, size = _hash_file(path, progress)
            existing = self.hub.store.library_items_by_sha(sha)
            if existing:
                return ImportResult(path, "skipped",
                                    f"already in the library as “{existing[0].title}”",
                                    existing[0])
            if self.hub.quota_bytes is not None and not self.hub.blobs.has(sha):
                self.hub.require_library_room(
                    size, room=max(0, self.hub.quota_bytes - self.used_bytes))
            found = read_metadata(path, media_type, verify_zim=self.verify)
            newly_stored = self._place(path, sha)
            try:
                item = self.hub.add_stored_library_file(
                    self.actor, sha, filename=path.name,
                    title=title or found.get("title") or title_from_name(path),
                    collection=collection, verify=False)  # verified above, before placing it
            except BaseException:
                if newly_stored and not self.hub.store.library_items_by_sha(sha):
                    self.hub.blobs.delete(sha)
                raise
            if newly_stored:
                self._used = self.used_bytes + size
            return ImportResult(path, "added", "", item)
        except ValidationError as exc:
            return ImportResult(path, "refused", _reason(exc))
        except PermissionDenied:
            raise
        except OSError as exc:
            return ImportResult(path, "refused", f"cannot read it ({exc.strerror or exc})")

    def import_dir(self, directory: str | os.PathLike[str], *, collection: str = "",
                   on_result: Callable[[ImportResult], None] | None = None) -> ImportSummary:
        """Add every file under ``directory`` (hidden ones left out); returns the summary."""
        directory = Path(directory)
        if not directory.is_dir():
            raise NodeError(f"{directory}: not a folder")
        summary = ImportSummary()
        for path in iter_files(directory):
            result = self.add(path, collection=collection)
            summary.results.append(result)
            if on_result is not None:
                on_result(result)
        return summary

    def _place(self, path: Path, sha: str) -> bool:
        """Put the file into the BlobStore under ``sha``; False if it was already there."""
        blobs = self.hub.blobs
        if blobs.has(sha):
            return False
        final = blobs.path(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        if self.link:
            tmp = blobs.root / f".link-{secrets.token_hex(8)}.tmp"
            try:
                os.link(path, tmp)
            except OSError:
                pass  # another filesystem, or links not allowed: copy instead
            else:
                try:
                    os.chmod(tmp, 0o444)
                    os.replace(tmp, final)
                    fsync_dir(final.parent)
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
                    raise
                return True
        with path.open("rb") as stream:
            stored, _size = blobs.put(stream)
        if stored != sha:  # the file changed while we read it
            if not self.hub.store.library_items_by_sha(stored):
                blobs.delete(stored)
            raise ValidationError({"file": f"{path} changed while it was being added; "
                                           "try again once nothing writes to it"})
        return True


def _hash_file(path: Path, progress: Callable[[int], None] | None) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest(), size


def _reason(exc: ValidationError) -> str:
    fields = getattr(exc, "fields", None)
    if isinstance(fields, dict) and fields:
        return "; ".join(msg if name == "file" else f"{name}: {msg}"
                         for name, msg in fields.items())
    return str(exc)
