"""Write an image to a target, first MiB last, then read it back and compare SHA-256.

Order of writes: the first MiB of the target is zeroed (and synced) before
anything else, the rest of the image follows, and the image's real first MiB
(partition table, boot code) is written last. A card pulled out, or an image
that turns out truncated, therefore never holds a partition table pointing at
half-written partitions: it does not boot, and the message says to flash again.

The image's own partition table is checked twice: before anything is
written (it must fit the target), and before the first MiB is written (the
stream must have been as long as the table says, or the image was cut short).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from provisioning.errors import FlashError, ImageError
from provisioning.flash.devices import human
from provisioning.flash.layout import check_length, read_layout
from provisioning.flash.progress import Progress
from provisioning.flash.source import HEAD, ImageSource
from provisioning.flash.target import Target

CHUNK = 4 << 20


@dataclass(frozen=True)
class FlashResult:
    """What was written and how long it took."""

    written: int
    sha256: str
    write_seconds: float
    verify_seconds: float


def not_usable(target: Target) -> str:
    """The sentence every failure after the first write ends with."""
    return f"{target.path} is not usable — flash again"


def write_image(source: ImageSource, target: Target, progress: Progress | None = None
                ) -> tuple[int, str]:
    """Stream ``source`` onto ``target`` (first MiB last); return (length, SHA-256)."""
    chunks = source.chunks(CHUNK)
    hasher = hashlib.sha256()
    head, rest = _take_head(chunks)
    layout = read_layout(head, str(source.path))
    if source.expected_size is not None:
        check_length(layout, source.expected_size, str(source.path))
    capacity = target.size()
    needed = max(layout.end, source.expected_size or 0)
    if capacity is not None and needed > capacity:
        raise FlashError(f"{source.path}: the image needs {human(needed)} but {target.path} "
                         f"holds only {human(capacity)}; nothing was written (use a larger "
                         "card)")
    hasher.update(head)
    offset = len(head)
    try:
        target.write_at(0, bytes(len(head)))
        target.sync()
        for chunk in _chain(rest, chunks):
            hasher.update(chunk)
            target.write_at(offset, chunk)
            offset += len(chunk)
            if progress is not None:
                progress.update(offset, source.consumed()
                                if source.expected_size is None else offset)
        check_length(layout, offset, str(source.path))
        target.write_at(0, head)
        target.sync()
    except ImageError as exc:
        raise ImageError(f"{exc}; {not_usable(target)}") from None
    except OSError as exc:
        raise FlashError(f"writing {target.path} failed after {human(offset)} "
                         f"({exc.strerror or exc}); {not_usable(target)}") from None
    if progress is not None:
        progress.finish(offset)
    return offset, hasher.hexdigest()


def verify(target: Target, length: int, expected: str, progress: Progress | None = None) -> None:
    """Read back exactly ``length`` bytes and compare their SHA-256 with ``expected``."""
    hasher = hashlib.sha256()
    offset = 0
    try:
        target.drop_cache()
        while offset < length:
            data = target.read_at(offset, min(CHUNK, length - offset))
            if not data:
                break
            hasher.update(data)
            offset += len(data)
            if progress is not None:
                progress.update(offset)
    except OSError as exc:
        raise FlashError(f"reading {target.path} back failed after {human(offset)} "
                         f"({exc.strerror or exc}); {not_usable(target)}") from None
    if progress is not None:
        progress.finish(offset)
    if offset != length or hasher.hexdigest() != expected:
        raise FlashError(f"verification failed: {target.path} does not hold what was written "
                         f"(SHA-256 differs over {human(length)}); {not_usable(target)} "
                         "(a faulty or fake card? try another one)")


def flash(source: ImageSource, target: Target, *, progress: bool = False,
          before_verify: Callable[[Target], None] | None = None) -> FlashResult:
    """Write then verify; ``before_verify`` is a test seam (e.g. to corrupt the target)."""
    total = source.expected_size or source.compressed_size
    started = time.monotonic()
    length, digest = write_image(source, target,
                                 Progress("writing  ", total) if progress else None)
    written_at = time.monotonic()
    if before_verify is not None:
        before_verify(target)
    verify(target, length, digest, Progress("verifying", length) if progress else None)
    return FlashResult(length, digest, written_at - started, time.monotonic() - written_at)


def _take_head(chunks: Iterator[bytes]) -> tuple[bytes, bytes]:
    """The first MiB of the stream, and whatever of the next chunk came with it."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        if len(buffer) >= HEAD:
            break
    return bytes(buffer[:HEAD]), bytes(buffer[HEAD:])


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest
