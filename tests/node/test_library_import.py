"""Bulk import and ``meshhub library add``: metadata read from real files, duplicates
skipped by hash, unknown types and damaged archives refused, big files hard-linked."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.cli import cli
from node.hub import Hub
from node.identity import Identity
from node.library import Importer
from node.library.metadata import read_metadata
from node.library.zimbuild import ZimArticle, ZimSpec, build_zim
from node.store import Store
from tests.node.test_store_support import FakeClock, make_hub, open_store

MP3_FRAME = bytes([0xFF, 0xFB, 0x90, 0xC0]) + bytes(413)  # MPEG-1 Layer III 128 kb/s 44.1 kHz


def write_epub(path: Path) -> Path:
    """A real EPUB 3 written by ebooklib, with Dublin Core metadata."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("urn:uuid:elm-street-stories")
    book.set_title("Stories from Elm Street")
    book.set_language("es")
    book.add_author("Rosa Martínez")
    book.add_metadata("DC", "description", "<p>Tales told at the <b>repair café</b>.</p>")
    chapter = epub.EpubHtml(title="One", file_name="one.xhtml", lang="es")
    chapter.content = "<h1>Uno</h1><p>Había una vez una bomba de agua.</p>"
    book.add_item(chapter)
    book.toc = [chapter]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", chapter]
    epub.write_epub(str(path), book)
    return path


def write_pdf(path: Path) -> Path:
    """A real PDF written by fpdf2 with /Title and /Author in its Info dictionary."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Boiling water safely")
    pdf.set_author("Elm Street Health Group")
    pdf.set_subject("How long, and why")
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.cell(text="Boil water for one minute.")
    pdf.output(str(path))
    return path


def write_mp3(path: Path) -> Path:
    """A short silent MP3 (real MPEG frames) with ID3v2 tags written by mutagen."""
    from mutagen.easyid3 import EasyID3

    path.write_bytes(MP3_FRAME * 40)
    tags = EasyID3()
    tags["title"] = "Oral history: the old well"
    tags["artist"] = "Elm Street Elders"
    tags["album"] = "Neighbourhood voices"
    tags["language"] = "eng"
    tags.save(str(path))
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    with open_store(tmp_path / "node" / "hub.sqlite3", Identity.generate(), clock=clock) as s:
        yield s


@pytest.fixture
def hub(store: Store, clock: FakeClock) -> Hub:
    return make_hub(store, clock)  # organiser "olu"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "incoming"
    (folder / "books").mkdir(parents=True)
    (folder / "audio").mkdir()
    write_epub(folder / "books" / "stories.epub")
    pdf = write_pdf(folder / "books" / "boiling.pdf")
    (folder / "books" / "boiling (copy).pdf").write_bytes(pdf.read_bytes())
    write_mp3(folder / "audio" / "well.mp3")
    (folder / "notes.docx").write_bytes(b"PK\x03\x04" + b"\x00" * 60)  # some other zip
    (folder / "readme.txt").write_text("Hello\n", encoding="utf-8")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return folder


def test_metadata_is_read_from_real_files(tmp_path: Path) -> None:
    epub = read_metadata(write_epub(tmp_path / "s.epub"), "epub")
    assert epub == {"title": "Stories from Elm Street", "author": "Rosa Martínez",
                    "language": "es", "description": "Tales told at the repair café."}
    pdf = read_metadata(write_pdf(tmp_path / "b.pdf"), "pdf")
    assert pdf == {"title": "Boiling water safely", "author": "Elm Street Health Group",
                   "description": "How long, and why"}
    mp3 = read_metadata(write_mp3(tmp_path / "w.mp3"), "audio")
    assert mp3 == {"title": "Oral history: the old well", "author": "Elm Street Elders",
                   "language": "en", "description": "Neighbourhood voices"}
    garbage = tmp_path / "g.epub"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    assert read_metadata(garbage, "epub") == {}


def test_import_folder_summary(hub: Hub, store: Store, folder: Path) -> None:
    lines: list[str] = []
    summary = Importer(hub, "olu").import_dir(
        folder, collection="Donated", on_result=lambda r: lines.append(r.path.name))
    by_name = {r.path.name: r for r in summary.results}
    assert summary.counts == {"added": 3, "skipped": 1, "refused": 2}
    assert ".DS_Store" not in by_name and len(lines) == 6
    added = {r.path.name: r.item for r in summary.of("added")}
    assert set(added) == {"stories.epub", "well.mp3"} | {
        n for n in ("boiling.pdf", "boiling (copy).pdf") if n in added}
    book = added["stories.epub"]
    assert book is not None
    assert (book.title, book.author, book.language, book.media_type, book.collection) == (
        "Stories from Elm Street", "Rosa Martínez", "es", "epub", "Donated")
    song = added["well.mp3"]
    assert song is not None and (song.title, song.media_type, song.mime) == (
        "Oral history: the old well", "audio", "audio/mpeg")
    (skipped,) = summary.of("skipped")
    assert skipped.path.name in ("boiling.pdf", "boiling (copy).pdf")
    assert "already in the library as “Boiling water safely”" in skipped.reason
    refused = {r.path.name: r.reason for r in summary.of("refused")}
    assert "the library accepts PDF, EPUB" in refused["notes.docx"]
    assert "unrecognised" in refused["readme.txt"]
    assert store.library_items().total == 3
    # Importing again adds nothing: everything is a duplicate now.
    again = Importer(hub, "olu").import_dir(folder)
    assert again.counts == {"added": 0, "skipped": 4, "refused": 2}


def test_big_file_is_hard_linked_not_copied(hub: Hub, tmp_path: Path) -> None:
    source = build_zim(tmp_path / "wiki.zim", [
        ZimArticle("Home", "Home", "<html><body><p>Hello</p></body></html>")],
        ZimSpec(title="Pocket Wikipedia", language="fra", main_path="Home",
                creator="Kiwix", description="Le meilleur de Wikipédia"))
    result = Importer(hub, "olu").add(source)
    assert result.status == "added" and result.item is not None
    item = result.item
    assert (item.title, item.language, item.author, item.media_type) == (
        "Pocket Wikipedia", "fr", "Kiwix", "zim")
    stored = hub.blobs.path(item.sha256)
    assert os.path.samefile(stored, source), "one file on disk, two names"
    assert stored.stat().st_mode & 0o222 == 0, "read-only: content addressed by hash"
    copied = Importer(hub, "olu", link=False).add(tmp_path / "wiki.zim")
    assert copied.status == "skipped"


def test_damaged_zim_refused_and_nothing_kept(hub: Hub, tmp_path: Path) -> None:
    good = build_zim(tmp_path / "good.zim", [ZimArticle("A", "A", "<p>a</p>")]).read_bytes()
    truncated = tmp_path / "truncated.zim"
    truncated.write_bytes(good[: len(good) - 200])
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x55
    (tmp_path / "flipped.zim").write_bytes(bytes(flipped))
    importer = Importer(hub, "olu")
    first = importer.add(truncated)
    assert first.status == "refused" and "damaged or incomplete" in first.reason
    second = importer.add(tmp_path / "flipped.zim")
    assert second.status == "refused" and "checksum does not match" in second.reason
    unchecked = Importer(hub, "olu", verify=False).add(tmp_path / "flipped.zim")
    assert unchecked.status == "added", "--no-verify trusts a checksum compared elsewhere"
    assert not hub.blobs.has(_sha(truncated))


def test_quota_refuses_with_a_reason(hub: Hub, tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "b.pdf")
    hub.quota_bytes = 100
    result = Importer(hub, "olu").add(pdf)
    assert result.status == "refused"
    assert "quota" in result.reason and "portal.library_quota_mb" in result.reason


def test_cli_import_and_add(tmp_path: Path, folder: Path) -> None:
    data = tmp_path / "cli-node"
    toml = tmp_path / "node.toml"
    toml.write_text(f'[node]\ndata_dir = "{data}"\n', encoding="utf-8")
    env = {"MESHHUB_CONFIG": str(toml)}
    runner = CliRunner()
    from node.config import load_config
    from node.hub import open_hub

    store, hub = open_hub(load_config(toml))
    try:
        hub.create_account(None, name="olu", password="a long enough password",
                           role="organiser")
    finally:
        store.close()
    result = runner.invoke(cli, ["library", "import", str(folder), "--as", "olu",
                                 "--collection", "Donated"], env=env)
    assert result.exit_code == 1, result.output  # something was refused
    assert "3 added, 1 skipped, 2 refused" in result.output
    assert "books/stories.epub: “Stories from Elm Street” (epub)" in result.output
    assert "readme.txt: this is an unrecognised file" in result.output
    zim = build_zim(tmp_path / "w.zim", [ZimArticle("A", "A", "<p>a</p>")],
                    ZimSpec(title="Tiny wiki", main_path="A"))
    added = runner.invoke(cli, ["library", "add", str(zim), "--as", "olu",
                                "--title", "Our wiki"], env=env)
    assert added.exit_code == 0, added.output
    assert "added: Our wiki (zim" in added.output
    denied = runner.invoke(cli, ["library", "add", str(zim), "--as", "nobody"], env=env)
    assert denied.exit_code != 0 and "not an enabled organiser account" in str(
        denied.exception or denied.output)


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
