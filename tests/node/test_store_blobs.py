"""Library files: stored by SHA-256, size limit, type by content, safe names."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from node.blobs import BlobStore, detect_type, safe_filename
from node.errors import ValidationError

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
ZIM = b"ZIM\x04" + b"\x00" * 76


def epub_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        zf.writestr("META-INF/container.xml", "<container/>")
    return buffer.getvalue()


def test_put_stores_by_sha256(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    sha, size = blobs.put(io.BytesIO(PDF))
    assert sha == hashlib.sha256(PDF).hexdigest() and size == len(PDF)
    assert blobs.path(sha) == tmp_path / sha[:2] / sha
    assert blobs.has(sha) and blobs.size(sha) == len(PDF)
    assert blobs.put(io.BytesIO(PDF)) == (sha, size)  # storing twice is harmless
    assert blobs.delete(sha) and not blobs.has(sha) and not blobs.delete(sha)


def test_oversized_upload_leaves_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    with pytest.raises(ValidationError) as info:
        blobs.put(io.BytesIO(b"x" * (3 * 1024 * 1024)), max_bytes=2 * 1024 * 1024)
    assert info.value.fields["file"].startswith("larger than 2 MiB")
    assert list(tmp_path.rglob("*")) == []


def test_path_refuses_non_hashes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        BlobStore(tmp_path).path("../../etc/passwd")


@pytest.mark.parametrize(("data", "media_type", "ext"), [
    (PDF, "pdf", "pdf"), (PNG, "image", "png"), (ZIM, "zim", "zim"),
    (b"ID3\x03\x00\x00\x00" + b"\x00" * 64, "audio", "mp3"),
    (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, "video", "mp4"),
])
def test_type_decided_by_content(tmp_path: Path, data: bytes, media_type: str,
                                 ext: str) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    found = detect_type(path)
    assert (found[0], found[2]) == (media_type, ext)


def test_epub_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "book.zip"
    path.write_bytes(epub_bytes())
    assert detect_type(path)[:2] == ("epub", "application/epub+zip")


@pytest.mark.parametrize(("data", "found"), [
    (b"MZ\x90\x00" + b"\x00" * 64, "EXE file"),
    (b"just some text", "unrecognised file"),
])
def test_other_types_are_refused_naming_accepted_ones(tmp_path: Path, data: bytes,
                                                       found: str) -> None:
    path = tmp_path / "upload.pdf"
    path.write_bytes(data)
    with pytest.raises(ValidationError) as info:
        detect_type(path)
    assert found in info.value.fields["file"] and "PDF, EPUB" in info.value.fields["file"]


@pytest.mark.parametrize(("name", "ext", "expected"), [
    ("water-guide.pdf", "pdf", "water-guide.pdf"),
    ("../../etc/passwd", "pdf", "passwd.pdf"),
    ("C:\\Users\\me\\Report 2024.exe", "pdf", "Report 2024.pdf"),
    ("...", "epub", "file.epub"),
    ("", "zim", "file.zim"),
    ("<script>alert(1)</script>.pdf", "pdf", "script.pdf"),
    ("a<b>|c?.pdf", "pdf", "a-b-c.pdf"),
    ("Café\x00\n.mp3", "mp3", "Café.mp3"),
])
def test_safe_filename(name: str, ext: str, expected: str) -> None:
    assert safe_filename(name, ext) == expected
