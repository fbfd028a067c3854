"""Library files between nodes: which to fetch within the quota, and fetching one by hash.

Only files of live library items are fetched (a deleted item's file is
never asked for). When the quota (``portal.library_quota_mb``) or the disk
cannot take every missing file, the newest items come first and, among
equally new ones, the smallest; what does not fit is reported as skipped.

A transfer streams into ``<library>/.partial-<sha256>``; when it breaks off,
the next attempt asks for the rest with ``Range: bytes=N-``. The complete
file is hashed before it is renamed into place: bytes that do not match the
hash are thrown away and the peer that sent them is backed off.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node import transfer
from node.blobs import BlobStore
from node.frozen import frozen
from node.store import Store
from node.sync.client import PeerClient

#: Disk space always left free besides the quota (the database must still grow).
DISK_RESERVE_BYTES = 64 * 1024 * 1024


@frozen
class WantedFile:
    """A file that live library items refer to."""

    sha256: str
    size: int
    created_at: int
    title: str

    def to_json(self, reason: str | None = None) -> dict[str, Any]:
        """A status record."""
        record: dict[str, Any] = {"sha256": self.sha256, "size": self.size, "title": self.title}
        if reason is not None:
            record["reason"] = reason
        return record


@dataclass
class FilePlan:
    """Which missing files to fetch now, and which to skip (with the reason)."""

    fetch: list[WantedFile] = field(default_factory=list)
    skipped: list[tuple[WantedFile, str]] = field(default_factory=list)
    used_bytes: int = 0


def wanted_files(store: Store) -> list[WantedFile]:
    """Every file referenced by a live library item, once per hash (newest item wins)."""
    found: dict[str, WantedFile] = {}
    page = 1
    while True:
        result = store.library_items(page=page, per_page=200)
        for item in result.items:
            known = found.get(item.sha256)
            if known is None or item.created_at > known.created_at:
                found[item.sha256] = WantedFile(item.sha256, item.size, item.created_at,
                                                item.title)
        if page * result.per_page >= result.total or not result.items:
            break
        page += 1
    return list(found.values())


def plan_files(store: Store, blobs: BlobStore, quota_bytes: int | None,
               free_bytes: Callable[[Path], int] | None = None) -> FilePlan:
    """Decide which missing files to fetch: newest first, then smallest, within quota and disk."""
    plan = FilePlan()
    wanted = wanted_files(store)
    missing = []
    for want in wanted:
        if blobs.has(want.sha256):
            plan.used_bytes += blobs.size(want.sha256)
        else:
            missing.append(want)
    blobs.root.mkdir(parents=True, exist_ok=True)
    free = (free_bytes or (lambda p: shutil.disk_usage(p).free))(blobs.root) - DISK_RESERVE_BYTES
    used = plan.used_bytes
    for want in sorted(missing, key=lambda w: (-w.created_at, w.size, w.sha256)):
        if quota_bytes is not None and used + want.size > quota_bytes:
            plan.skipped.append((want, f"library quota: {want.size} bytes do not fit in the "
                                       f"{quota_bytes - used} left of {quota_bytes}"))
        elif want.size > free:
            plan.skipped.append((want, f"disk: {want.size} bytes do not fit in the "
                                       f"{max(0, free)} free"))
        else:
            plan.fetch.append(want)
            used += want.size
            free -= want.size
    return plan


def partial_path(blobs: BlobStore, sha256: str) -> Path:
    """Where an interrupted transfer of ``sha256`` is kept until it is resumed."""
    blobs.path(sha256)  # validates the hash
    return blobs.root / f".partial-{sha256}"


def fetch_file(client: PeerClient, blobs: BlobStore, want: WantedFile, *,
               stop: Callable[[], bool] = lambda: False) -> bool:
    """Fetch ``want`` from ``client``'s node; True if stored, False if the peer lacks it.

    Raises :class:`AgentError` for a broken transfer (the partial file stays,
    to be resumed) and for wrong bytes (bad_data; the partial file is removed).
    """
    partial = partial_path(blobs, want.sha256)
    offset = transfer.resume_offset(partial, want.size)
    where = f"file {want.sha256[:12]}"
    fail = client.error
    with client.blob(want.sha256, offset) as response:
        if not transfer.receive(response, partial, offset=offset, size=want.size, where=where,
                                authority="the library item", fail=fail, stop=stop):
            return False
    final = blobs.path(want.sha256)
    final.parent.mkdir(parents=True, exist_ok=True)
    transfer.install(partial, final, sha256=want.sha256, where=where,
                     authority="the library item", fail=fail, mode=0o644)
    return True
