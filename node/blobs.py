"""Library files, stored once each by SHA-256 under ``root/ab/<sha256>``.

Uploads stream to a temporary file in ``root`` while being hashed and
counted; an upload over the limit, or of a type the library does not take,
leaves nothing behind. The file type is decided from the content (magic
bytes, via ``filetype``), never from the name a browser sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import BinaryIO

from node.atomic import fsync_dir
from node.errors import ValidationError
from node.messages import N_, msg

CHUNK = 1024 * 1024
MIB = 1024 * 1024
_SHA = re.compile(r"[0-9a-f]{64}")
ZIM_MAGIC = b"ZIM\x04"  # 0x044D495A, little-endian, at offset 0 of every ZIM archive
#: Image types a browser shows; other "images" (PSD, DWG ...) are refused.
IMAGE_MIMES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/avif"})
#: What a file picker should offer for the library (``accept=``): the types detect_type takes.
UPLOAD_ACCEPT = ",".join((".pdf", "application/pdf", ".epub", "application/epub+zip", "audio/*",
                          "video/*", *sorted(IMAGE_MIMES), ".zim", "application/x-zim"))


class BlobStore:
    """Content-addressed files on disk (the library's uploads)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """Where the file with this hash lives (whether or not it exists)."""
        if not _SHA.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        """Whether the file is stored."""
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        """The stored file's size in bytes."""
        return self.path(sha256).stat().st_size

    def delete(self, sha256: str) -> bool:
        """Remove the file; True if it was there."""
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def usage(self) -> int:
        """Bytes the stored files take now (each file counted once)."""
        total = 0
        if not self.root.is_dir():
            return 0
        for sub in self.root.iterdir():
            if sub.is_dir() and len(sub.name) == 2:
                for entry in sub.iterdir():
                    with contextlib.suppress(OSError):
                        total += entry.stat().st_size
        return total

    def put(self, stream: BinaryIO, max_bytes: int | None = None) -> tuple[str, int]:
        """Store everything read from ``stream``; returns (sha256, size).

        Raises ValidationError({"file": ...}) when more than ``max_bytes``
        arrive; nothing is left on disk then.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise ValidationError({"file": msg(
                            N_("larger than %(max)g MiB, the most this node accepts"),
                            max=max_bytes / MIB)})
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self.path(sha)
            final.parent.mkdir(exist_ok=True)
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)  # same content if it existed: replacing is harmless
            fsync_dir(final.parent)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return sha, size


def detect_type(path: str | os.PathLike[str]) -> tuple[str, str, str]:
    """(media_type, mime, extension) decided from the file's first bytes.

    Raises ValidationError({"file": ...}) naming the accepted types when the
    content is not one of them.
    """
    import filetype  # lazily: only uploads need it

    with open(path, "rb") as handle:
        head = handle.read(8192)
    if head.startswith(ZIM_MAGIC):
        return "zim", "application/x-zim", "zim"
    kind = filetype.guess(head)
    if kind is not None:
        mime, ext = kind.mime, kind.extension
        if mime == "application/pdf":
            return "pdf", mime, ext
        if mime == "application/epub+zip":
            return "epub", mime, ext
        if mime.startswith("audio/"):
            return "audio", mime, ext
        if mime.startswith("video/"):
            return "video", mime, ext
        if mime in IMAGE_MIMES:
            return "image", mime, ext
        raise ValidationError({"file": msg(N_(
            "this is a %(type)s file; the library accepts PDF, EPUB, audio, video, "
            "JPEG/PNG/GIF/WebP images and ZIM archives"), type=ext.upper())})
    raise ValidationError({"file": msg(N_(
        "this is an unrecognised file; the library accepts PDF, EPUB, audio, video, "
        "JPEG/PNG/GIF/WebP images and ZIM archives"))})


def safe_filename(name: str, extension: str, *, max_len: int = 100) -> str:
    """A download name from what the uploader called the file: no path, sane characters.

    The extension is always the one matching the content (``report.exe``
    that is really a PDF becomes ``report.pdf``).
    """
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", name or ""))[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = re.sub(r"[^\w\-. ]+", "-", stem, flags=re.UNICODE)
    stem = re.sub(r"\s+", " ", stem).strip(" .-")[:max_len].strip(" .-")
    return f"{stem or 'file'}.{extension}"
