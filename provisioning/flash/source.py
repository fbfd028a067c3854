"""Reading a node image as a stream, decompressing on the way.

Formats are recognised by their first bytes (the file name only appears in
messages): raw ``.img``, gzip, xz, zstd, and a zip holding exactly one
``.img``. A truncated or corrupt archive raises :class:`ImageError` while
streaming; callers must treat whatever was written so far as unusable.

Before writing, :meth:`ImageSource.check_layout` reads the image's partition
table and refuses an image shorter than its table says (a raw download cut
short), and :meth:`ImageSource.check_sidecar` verifies ``IMAGE.sha256`` when
one lies next to the image.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import re
import zipfile
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from provisioning.errors import ImageError
from provisioning.flash.layout import Layout, check_length, read_layout

#: How much of the image's start holds its partition table (the writer's first MiB).
HEAD = 1 << 20
_SUM_LINE = re.compile(r"([0-9a-fA-F]{64})(?:\s+\*?(.+))?")

_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"PK\x03\x04": "zip",
    b"PK\x05\x06": "zip",  # an empty zip
}
_UNSUPPORTED = {b"7z\xbc\xaf\x27\x1c": "7-Zip", b"BZh": "bzip2", b"Rar!": "RAR"}


@dataclass
class ImageSource:
    """An opened image: its format, sizes where known, and its decompressed chunks."""

    path: Path
    kind: str
    compressed_size: int
    expected_size: int | None
    member: str | None
    _file: BinaryIO

    def consumed(self) -> int:
        """Bytes of the (compressed) file read so far, for progress."""
        try:
            return self._file.tell()
        except (OSError, ValueError):
            return 0

    def chunks(self, size: int = 4 << 20) -> Generator[bytes, None, None]:
        """The image's bytes in pieces of about ``size``; raises ImageError if damaged."""
        try:
            if self.kind == "zstd":
                yield from _zstd_chunks(self._file, size)
                return
            reader = self._reader()
            while chunk := reader.read(size):
                yield chunk
        except (EOFError, zipfile.BadZipFile, gzip.BadGzipFile, lzma.LZMAError, zlib.error) as exc:
            raise ImageError(f"{self.path}: the {self.kind} image is truncated or corrupt "
                             f"({exc}); download it again") from None

    def head(self, size: int = HEAD) -> bytes:
        """The image's first ``size`` bytes (decompressed), leaving the stream at its start."""
        buffer = bytearray()
        chunks = self.chunks(size)
        try:
            for chunk in chunks:
                buffer += chunk
                if len(buffer) >= size:
                    break
        finally:
            chunks.close()
            self._file.seek(0)
        return bytes(buffer[:size])

    def check_layout(self) -> Layout:
        """Read the partition table; refuse a damaged one, or one longer than a known size.

        Why: a raw image cut short decompresses (or copies) without any error,
        and only its own table shows that it is not whole.
        """
        layout = read_layout(self.head(), str(self.path))
        if self.expected_size is not None:
            check_length(layout, self.expected_size, str(self.path))
        return layout

    def check_sidecar(self) -> Path | None:
        """Verify the image file against ``IMAGE.sha256`` next to it, if there is one.

        Returns the checksum file used, or None. Raises ImageError naming the
        file and line when it cannot be read or the image does not match.
        """
        sidecar = self.path.with_name(self.path.name + ".sha256")
        if not sidecar.is_file():
            return None
        expected = _expected_sum(sidecar, self.path.name)
        hasher = hashlib.sha256()
        with open(self.path, "rb") as data:
            while block := data.read(4 << 20):
                hasher.update(block)
        if hasher.hexdigest() != expected.lower():
            raise ImageError(f"{self.path}: does not match its checksum file {sidecar} "
                             f"(SHA-256 {hasher.hexdigest()}, expected {expected.lower()}): "
                             "the image is damaged or truncated; download it again")
        return sidecar

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._file.close()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reader(self) -> BinaryIO:
        if self.kind == "gzip":
            return gzip.GzipFile(fileobj=self._file, mode="rb")  # type: ignore[return-value]
        if self.kind == "xz":
            return lzma.LZMAFile(self._file)  # type: ignore[return-value]
        if self.kind == "zip":
            return zipfile.ZipFile(self._file).open(self.member or "")  # type: ignore[return-value]
        return self._file


def open_image(path: str | os.PathLike[str]) -> ImageSource:
    """Open ``path`` and recognise its format; raise ImageError naming what is wrong."""
    file = Path(path)
    try:
        handle: BinaryIO = open(file, "rb")  # noqa: SIM115 - closed by ImageSource.close
    except OSError as exc:
        raise ImageError(f"{file}: cannot open the image ({exc.strerror})") from None
    try:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(8)
        handle.seek(0)
        if not head:
            raise ImageError(f"{file}: the image is empty")
        for magic, name in _UNSUPPORTED.items():
            if head.startswith(magic):
                raise ImageError(f"{file}: {name} archives are not supported; unpack it or "
                                 "use .img, .img.gz, .img.xz, .img.zst or .zip")
        kind = next((k for m, k in _MAGIC.items() if head.startswith(m)), "raw")
        member = None
        expected: int | None = size if kind == "raw" else None
        if kind == "zip":
            member, expected = _zip_member(file, handle)
        return ImageSource(file, kind, size, expected, member, handle)
    except BaseException:
        handle.close()
        raise


def _expected_sum(sidecar: Path, name: str) -> str:
    """The SHA-256 that ``sidecar`` (``sha256sum`` output, or a bare hash) gives for ``name``."""
    try:
        lines = sidecar.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageError(f"{sidecar}: cannot read the checksum file ({exc})") from None
    listed = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        match = _SUM_LINE.fullmatch(line.strip())
        if match is None:
            raise ImageError(f"{sidecar}: line {number}: expected a SHA-256 (64 hex digits) "
                             "and the file name, as sha256sum writes them")
        listed.append(match.group(2) or "")
        if match.group(2) in (None, name) or Path(match.group(2)).name == name:
            return match.group(1)
    raise ImageError(f"{sidecar}: does not list {name} (it lists {', '.join(listed) or 'nothing'})"
                     f"; use the checksum file published with this image")


def _zip_member(file: Path, handle: BinaryIO) -> tuple[str, int]:
    try:
        with zipfile.ZipFile(handle) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as exc:
        raise ImageError(f"{file}: the zip archive is truncated or corrupt ({exc}); "
                         "download it again") from None
    finally:
        handle.seek(0)
    images = [i for i in infos if i.filename.lower().endswith(".img")]
    if len(images) != 1:
        listing = ", ".join(i.filename for i in infos[:5]) or "nothing"
        count = "no image" if not images else f"{len(images)} images"
        raise ImageError(f"{file}: the zip holds {count} ({listing}); it must hold exactly one "
                         ".img file")
    return images[0].filename, images[0].file_size


def _zstd_chunks(handle: BinaryIO, size: int) -> Iterator[bytes]:
    """Decompress every zstd frame in turn; a frame cut short is an error."""
    import zstandard  # imported here: only .zst images need it

    try:
        decompressor = zstandard.ZstdDecompressor()
        obj = decompressor.decompressobj()
        started = False
        while data := handle.read(size):
            while data:
                started = True
                out = obj.decompress(data)
                if out:
                    yield out
                if not obj.eof:
                    break
                data = obj.unused_data
                obj = decompressor.decompressobj()
                started = False
        if started:
            raise ImageError(f"{getattr(handle, 'name', 'image')}: the zstd image is truncated "
                             "(the last frame is incomplete); download it again")
    except zstandard.ZstdError as exc:
        raise ImageError(f"{getattr(handle, 'name', 'image')}: the zstd image is corrupt "
                         f"({exc}); download it again") from None
